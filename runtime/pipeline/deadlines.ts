/**
 * How long each hop of a push may take. The waits nest: the sub-queue actor waits for the
 * processor longer than the processor waits for the pusher, which waits longer than the channel's
 * own timeout, so an inner timeout is always reported before an outer one fires.
 */
import type { HeraldConfig } from "../config/index.js";

/** Channel timeout when the topic sets none (webhook `timeoutMs`; the nats channel's flush). */
const DEFAULT_CHANNEL_TIMEOUT_MS = 5000;
/** Each hop may take this long beyond the one inside it. */
const HOP_MARGIN_MS = 2000;

function channelTimeoutMs(config: HeraldConfig, topic: string): number {
  const t = config.topics[topic];
  return t?.channel === "webhook" ? (t.timeoutMs ?? DEFAULT_CHANNEL_TIMEOUT_MS) : DEFAULT_CHANNEL_TIMEOUT_MS;
}

/** The processor's wait for a pusher. */
export function pushTimeoutMs(config: HeraldConfig, topic: string): number {
  return channelTimeoutMs(config, topic) + HOP_MARGIN_MS;
}

/** The sub-queue actor's wait for a processor (which includes the processor's wait for a pusher). */
export function processTimeoutMs(config: HeraldConfig, topic: string): number {
  return pushTimeoutMs(config, topic) + HOP_MARGIN_MS;
}
