/**
 * How long each hop of a delivery may take. The dispatcher waits for each hop itself — a render,
 * then a push — so the waits do not nest: a push waits for its channel's own timeout and a margin.
 */
import type { HeraldConfig, SingleTopicConfig } from "../config/index.js";
import { channelsOf } from "../config/topics.js";

/** Channel timeout when the topic sets none (webhook and email `timeoutMs`; the nats channel's flush). */
const DEFAULT_CHANNEL_TIMEOUT_MS = 5000;
/** A hop may take this long beyond the work inside it (queueing, the thread hops). */
const HOP_MARGIN_MS = 2000;
/** Rendering a batch is CPU work in a processor: a generous bound. */
const RENDER_TIMEOUT_MS = 5000;

/** The dispatcher's wait for a processor's render of a batch. */
export function renderTimeoutMs(): number {
  return RENDER_TIMEOUT_MS + HOP_MARGIN_MS;
}

/** The dispatcher's wait for a pusher's outcomes of a batch (pushed concurrently). */
export function pushTimeoutMs(config: HeraldConfig, topic: string): number {
  const t = config.topics[topic];
  if (t === undefined) return DEFAULT_CHANNEL_TIMEOUT_MS + HOP_MARGIN_MS;
  const inFlight = t.concurrency ?? config.pipeline.maxInFlight;
  // A fan-out message's channels are pushed at once: the slowest of them bounds the hop.
  let longest = 0;
  for (const c of channelsOf(t)) longest = Math.max(longest, channelTimeoutMs(c, inFlight));
  return longest + HOP_MARGIN_MS;
}

/** How long one channel may take with a batch of `inFlight` pushes. */
function channelTimeoutMs(c: SingleTopicConfig, inFlight: number): number {
  switch (c.channel) {
    case "email":
      // A batch's mails wait their turn for one of the pool's connections: up to
      // ceil(in flight ÷ connections) sends one after another on one of them.
      return c.timeoutMs * Math.ceil(inFlight / c.smtp.maxConnections);
    case "webhook":
      return c.timeoutMs ?? DEFAULT_CHANNEL_TIMEOUT_MS;
    default:
      return DEFAULT_CHANNEL_TIMEOUT_MS;
  }
}
