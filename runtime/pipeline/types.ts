/**
 * The message pipeline's contracts: the envelope every stage passes on, the push format, and the
 * outcomes a stage reports back (each maps one to one onto what happens to the queue message).
 */

/** Where a message entered Herald. */
export type Source = "nats" | "submit" | "http" | `collector:${string}`;

/** A message as queued (DESIGN.md §3). Fields beyond these are not allowed at ingest. */
export interface Envelope {
  /** ULID assigned at ingest, or the caller's own id (deduplicated within the stream's window). */
  id: string;
  topic: string;
  /** Recipient, channel-specific (a user id, a device token, an address). */
  to?: string;
  /** What templates render from. */
  data: Record<string, unknown>;
  /** ms since epoch, set at ingest. */
  createdAt: number;
  source: Source;
  /** Push attempts so far (0 until the first push). */
  attempts: number;
  /**
   * Of a fan-out topic: the channels (by name) still to deliver. Absent: every channel of the topic.
   * Set by Herald only: an exception entry names the channels it retries, a dead letter its channel.
   */
  channels?: string[];
  /** Scheduled delivery: due at this time, ms since the epoch on the server's clock (pipeline/schedule.ts). */
  deliverAt?: number;
  /** Scheduled delivery: due this long after the server stored the message, ms. Never with `deliverAt`. */
  delayMs?: number;
}

/** What a processor produces and a pusher delivers: rendered fields plus the envelope's identity. */
export interface PushMessage {
  id: string;
  topic: string;
  to?: string;
  createdAt: number;
  /** Output field → rendered string, from the topic's template (empty for a fan-out topic). */
  rendered: Record<string, string>;
  data: Record<string, unknown>;
  /** Of a fan-out topic: each channel to push, with what its own template rendered. */
  channels?: ChannelPush[];
}

/** One channel of a fan-out message to push: its name in the topic and its rendered fields. */
export interface ChannelPush {
  channel: string;
  rendered: Record<string, string>;
}

/** What became of one channel of a fan-out message. */
export interface ChannelOutcome {
  channel: string;
  outcome: Outcome;
}

/** A pusher's answer for a fan-out message: one outcome per channel it was asked to push. */
export interface FanoutOutcome {
  channels: ChannelOutcome[];
}

/**
 * The outcome of processing and pushing one message.
 * - `delivered`: the channel accepted it → the queue message is acked.
 * - `retry`: a transient failure (timeout, 5xx, 408, 429, network) → exception queue, retried
 *   after `retryAfterMs` if the channel said so, else on the backoff schedule.
 * - `dead`: a permanent failure (invalid input, render error, other 4xx) → dead letters at once.
 */
export type Outcome =
  | {
      outcome: "delivered";
      detail?: string;
      /** Addresses the provider reported dead and the channel removed from the recipients registry. */
      removed?: number;
      /** Delivered nowhere: every address was dead or the recipient had none (not a failure to retry). */
      nowhere?: boolean;
    }
  | {
      outcome: "retry";
      reason: string;
      retryAfterMs?: number;
      /** The HTTP status of the answer that failed, when there was one (a topic's `retry.abortOn` may make it permanent). */
      status?: number;
    }
  | { outcome: "dead"; reason: DeadReason; error: string };

/**
 * Why a message became a dead letter: `invalid` input, a `render` error, a push the receiver
 * `rejected` (a permanent failure), retries `exhausted`, an `unknown-topic`, a `poison` message
 * that kept failing before it could be settled, or one `too-large` for its exception entry.
 */
export type DeadReason = "invalid" | "render" | "rejected" | "exhausted" | "unknown-topic" | "poison" | "too-large";
