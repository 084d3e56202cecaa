/**
 * The JetStream layout of the pipeline: where messages, exceptions, dead letters, rules, pauses
 * and poison marks live. Every name derives from the subject prefix (default `herald`).
 *
 * | what             | stream / bucket      | subjects                          | retention                     |
 * | ---------------- | -------------------- | --------------------------------- | ----------------------------- |
 * | message queue    | `HERALD_QUEUE`       | `herald.in.<topic>`               | work queue (gone once acked)  |
 * | exception queue  | `HERALD_EXCEPTIONS`  | `herald.exc.<topic>`              | work queue                    |
 * | dead letters     | `HERALD_DLQ`         | `herald.dlq.<topic>`, `herald.dlq._unknown`, `herald.dlq._body.<topic>` | kept until replayed, purged or past `pipeline.deadLetters` limits |
 * | rules and pauses | KV `herald_rules`    | `default`, `topic.<T>`, `pause.all`, `pause.topic.<T>` | latest value |
 * | poison marks     | KV `herald_poison`   | `<stream>.<seq>`, `death.<node>.<actor>` | latest value, a day at most |
 *
 * Each configured topic has its own durable consumer on the queue (`subqueue-<topic>`) and on the
 * exception queue (`retry-<topic>`), so a paused, slow or backlogged topic never stands in front of
 * another topic's messages. Messages on subjects of no configured topic are swept into dead letters
 * by the master (see sweeper.ts). Topic names starting with "_" are reserved for the subjects above.
 */
import type { DeadReason, Envelope } from "./types.js";

export interface PipelineNames {
  queueStream: string;
  /** Subject filter the queue stream captures: `herald.in.>`. */
  queueSubjects: string;
  /** `herald.in.<topic>`. */
  in(topic: string): string;
  exceptionStream: string;
  /** Subject filter the exception stream captures: `herald.exc.>`. */
  exceptionSubjects: string;
  exc(topic: string): string;
  dlqStream: string;
  /** Subject filter the dead-letter stream captures: `herald.dlq.>`. */
  dlqSubjects: string;
  /** Dead letters of a configured topic. */
  dlq(topic: string): string;
  /** Dead letters of every topic that is not configured (one subject, however many junk topics). */
  dlqUnknown: string;
  /** The original of a dead letter too large to carry it (see {@link DeadLetter.body}). */
  dlqBody(topicToken: string): string;
  rulesBucket: string;
  /** KV bucket of poison marks and actors' last deaths (see poison.ts). */
  poisonBucket: string;
  /** Durable consumer the sub-queue actors share on one topic of the queue stream. */
  queueConsumer(topic: string): string;
  /** Durable consumer the retry loops share on one topic of the exception stream. */
  exceptionConsumer(topic: string): string;
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
    in: (topic) => `${prefix}.in.${topic}`,
    exceptionStream: `${up}_EXCEPTIONS`,
    exceptionSubjects: `${prefix}.exc.>`,
    exc: (topic) => `${prefix}.exc.${topic}`,
    dlqStream: `${up}_DLQ`,
    dlqSubjects: `${prefix}.dlq.>`,
    dlq: (topic) => `${prefix}.dlq.${topic}`,
    dlqUnknown: `${prefix}.dlq._unknown`,
    dlqBody: (topicToken) => `${prefix}.dlq._body.${topicToken}`,
    rulesBucket: `${prefix}_rules`,
    poisonBucket: `${prefix}_poison`,
    queueConsumer: (topic) => `subqueue-${topic}`,
    exceptionConsumer: (topic) => `retry-${topic}`,
    process: `${prefix}.work.process`,
    push: `${prefix}.work.push`,
  };
}

/** The consumers of Herald 0.1 (one for every topic); removed at setup, see setup.ts. */
export const LEGACY_CONSUMERS = { queue: "subqueue", exceptions: "retry" } as const;

/** Rules-bucket keys. */
export const RULES_DEFAULT_KEY = "default";
export const rulesKey = (topic: string) => `topic.${topic}`;
export const PAUSE_ALL_KEY = "pause.all";
export const pauseKey = (topic: string) => `pause.topic.${topic}`;

/** Poison-bucket keys. */
export const suspectKey = (stream: string, seq: number) => `${stream}.${seq}`;
export const deathKey = (node: string, actor: string) => `death.${node}.${actor}`;

/** Headers Herald sets on queued messages. */
export const HEADER_ENVELOPE = "Herald-Envelope"; // "1": the payload is a validated msgpack Envelope
export const HEADER_ID = "Herald-Id"; // the message id, on exception and dead-letter messages
/** Fault drills (`faultInjection: true` only): `crash` or `hang` the sub-queue actor reading it. */
export const HEADER_DRILL = "Herald-Drill";

/** A dead letter as stored on `herald.dlq.<topic>` or `herald.dlq._unknown` (msgpack). */
export interface DeadLetter {
  /** The message id, or for unparseable input `invalid:<stream seq>`. */
  id: string;
  topic: string;
  reason: DeadReason;
  error: string;
  attempts: number;
  /** ms since epoch, by the writer's wall clock (shown, never compared). */
  deadAt: number;
  /** The envelope, when the input was valid enough to have one. */
  envelope?: Envelope;
  /** The original bytes and subject, for input that could not be parsed (at most 64 KiB kept). */
  raw?: Uint8Array;
  subject?: string;
  /** The original carried the `Herald-Envelope` header (replay restores it). */
  envelopeHeader?: boolean;
  /**
   * Set when the letter with its original would not fit the server's `max_payload`: the original
   * is kept whole as its own message in the dead-letter stream, at this sequence, until the letter
   * is replayed or purged; `envelope` and `raw` are then left out.
   */
  body?: { seq: number; bytes: number };
}

/** An exception-queue entry (msgpack on `herald.exc.<topic>`). */
export interface ExceptionEntry {
  envelope: Envelope;
  error: string;
  /** Attempts made so far, including the one that failed first. */
  attempts: number;
  /** Wall-clock ms of the first failure (shown, never compared). */
  firstFailedAt: number;
  /**
   * How long after it is stored the entry is due, ms. The JetStream server keeps the time: the
   * first delivery puts it back with `nak(delayMs)`, the next one is the retry.
   */
  delayMs: number;
  /** Herald 0.1 entries: the writer's wall-clock due time (read only when `delayMs` is absent). */
  nextAttemptAt?: number;
}
