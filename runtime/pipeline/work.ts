/**
 * The contracts between the pipeline's actors, on the internal work subjects (msgpack; only nodes
 * may use these subjects, see runtime/nats/permissions.ts). A delivery reads forward in the
 * sub-queue actor's dispatcher: it sends a batch to a processor to render, then the rendered
 * messages to a pusher, then settles each outcome. Neither processor nor pusher calls anyone.
 *
 *   herald.work.process   RenderRequest (envelopes, one topic)  →  RenderReply (one result each)
 *   herald.work.push      PushRequest (push messages, one topic) →  PushReply (one outcome each)
 *
 * Batches keep their order, and every reply has exactly one entry per request entry.
 */
import { encode } from "../codec/index.js";
import type { ChannelOutcome, DeadReason, Envelope, FanoutOutcome, Outcome, PushMessage } from "./types.js";

/** Envelopes to render; `attempts` already counts this attempt. */
export interface RenderRequest {
  envelopes: Envelope[];
}

/**
 * A rendered message, or its permanent failure. Of a fan-out topic, `message.channels` holds the
 * channels that rendered and `failed` those that did not (each a dead outcome of its own).
 */
export type Rendered = { ok: true; message: PushMessage; failed?: ChannelOutcome[] } | { ok: false; reason: DeadReason; error: string };

export interface RenderReply {
  rendered: Rendered[];
}

/** Rendered messages of one topic to push. */
export interface PushRequest {
  topic: string;
  messages: PushMessage[];
}

/** One entry per message: an outcome, or for a fan-out message one outcome per channel. */
export interface PushReply {
  outcomes: (Outcome | FanoutOutcome)[];
}

/**
 * The answer to a submission (`herald.submit`, and `POST /v1/messages`, which the node's HTTP
 * server hands to an ingest actor of its node over its control channel).
 */
export type SubmitReply =
  | { ok: true; id: string; duplicate: boolean }
  | { ok: false; error: string; reason: "invalid" | "unknown-topic" | "too-large" | "unavailable" };

/**
 * Encodes a request whose items were encoded one by one (to size the batch), without encoding them
 * again: msgpack `{ <key>: [ ...items ] }` plus any `extra` string fields, written by hand.
 */
export function batchPayload(key: string, items: readonly Uint8Array[], extra: Record<string, string> = {}): Uint8Array {
  const head = encode({ ...extra, [key]: [] });
  // `encode` wrote the map with an empty array (0x90) last: replace that byte by the array's header.
  const arrayHeader = items.length < 16 ? [0x90 | items.length] : items.length < 65536 ? [0xdc, items.length >> 8, items.length & 0xff] : [0xdd, ...u32(items.length)];
  const size = head.length - 1 + arrayHeader.length + items.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(size);
  out.set(head.subarray(0, head.length - 1), 0);
  let at = head.length - 1;
  out.set(arrayHeader, at);
  at += arrayHeader.length;
  for (const b of items) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
