/**
 * How long each hop of a delivery may take. The dispatcher waits for each hop itself — a render,
 * then a push — so the waits do not nest: a push waits for its channel's own timeout and a margin.
 */
import type { HeraldConfig } from "../config/index.js";

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
  if (t?.channel === "email") {
    // A batch's mails wait their turn for one of the pool's connections: up to
    // ceil(in flight ÷ connections) sends one after another on one of them.
    const inFlight = t.concurrency ?? config.pipeline.maxInFlight;
    return t.timeoutMs * Math.ceil(inFlight / t.smtp.maxConnections) + HOP_MARGIN_MS;
  }
  const channel = t?.channel === "webhook" ? (t.timeoutMs ?? DEFAULT_CHANNEL_TIMEOUT_MS) : DEFAULT_CHANNEL_TIMEOUT_MS;
  return channel + HOP_MARGIN_MS;
}
