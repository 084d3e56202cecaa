/**
 * The JetStream layout of the pipeline: where messages, exceptions, dead letters, rules and
 * pauses live. Every name derives from the subject prefix (default `herald`).
 *
 * | what             | stream / bucket      | subjects                 | retention                     |
 * | ---------------- | -------------------- | ------------------------ | ----------------------------- |
 * | message queue    | `HERALD_QUEUE`       | `herald.in.<topic>`      | work queue (gone once acked)  |
 * | exception queue  | `HERALD_EXCEPTIONS`  | `herald.exc.<topic>`     | work queue                    |
 * | dead letters     | `HERALD_DLQ`         | `herald.dlq.<topic>`     | kept until replayed or purged |
 * | rules and pauses | KV `herald_rules`    | `default`, `topic.<T>`, `pause.all`, `pause.topic.<T>` | latest value |
 */
export interface PipelineNames {
  queueStream: string;
  /** Subject filter the queue stream captures: `herald.in.>`. */
  queueSubjects: string;
  exceptionStream: string;
  exc(topic: string): string;
  dlqStream: string;
  dlq(topic: string): string;
  rulesBucket: string;
  /** Durable consumer the sub-queue actors share on the queue stream. */
  queueConsumer: string;
  /** Durable consumer the retry loop uses on the exception stream. */
  exceptionConsumer: string;
  /** Queue group of processor actors: `herald.work.process`. */
  process: string;
  /** Queue group of pusher actors: `herald.work.push`. */
  push: string;
}

export function pipelineNames(prefix = "herald"): PipelineNames {
  const up = prefix.toUpperCase().replace(/-/g, "_");
  return {
    queueStream: `${up}_QUEUE`,
    queueSubjects: `${prefix}.in.>`,
    exceptionStream: `${up}_EXCEPTIONS`,
    exc: (topic) => `${prefix}.exc.${topic}`,
    dlqStream: `${up}_DLQ`,
    dlq: (topic) => `${prefix}.dlq.${topic}`,
    rulesBucket: `${prefix}_rules`,
    queueConsumer: "subqueue",
    exceptionConsumer: "retry",
    process: `${prefix}.work.process`,
    push: `${prefix}.work.push`,
  };
}

/** Rules-bucket keys. */
export const RULES_DEFAULT_KEY = "default";
export const rulesKey = (topic: string) => `topic.${topic}`;
export const PAUSE_ALL_KEY = "pause.all";
export const pauseKey = (topic: string) => `pause.topic.${topic}`;

/** Headers Herald sets on queued messages. */
export const HEADER_ENVELOPE = "Herald-Envelope"; // "1": the payload is a validated msgpack Envelope
export const HEADER_ID = "Herald-Id"; // the message id, on exception and dead-letter messages

/** A dead letter as stored on `herald.dlq.<topic>` (msgpack). */
export interface DeadLetter {
  /** The message id, or for unparseable input `invalid:<stream seq>`. */
  id: string;
  topic: string;
  reason: "invalid" | "render" | "rejected" | "exhausted" | "unknown-topic";
  error: string;
  attempts: number;
  /** ms since epoch. */
  deadAt: number;
  /** The envelope, when the input was valid enough to have one. */
  envelope?: import("./types.js").Envelope;
  /** The original bytes and subject, for input that could not be parsed. */
  raw?: Uint8Array;
  subject?: string;
}

/** An exception-queue entry (msgpack on `herald.exc.<topic>`), retried with nak(delay). */
export interface ExceptionEntry {
  envelope: import("./types.js").Envelope;
  error: string;
  /** Attempts made so far, including the one that failed first. */
  attempts: number;
  firstFailedAt: number;
  /** ms since epoch of the next attempt. */
  nextAttemptAt: number;
}
