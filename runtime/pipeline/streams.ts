/**
 * The JetStream layout of the pipeline: where messages, exceptions, dead letters, rules, pauses
 * and poison marks live, and why. The names themselves are made in ../names.ts.
 *
 * | what             | stream / bucket      | subjects                          | retention                     |
 * | ---------------- | -------------------- | --------------------------------- | ----------------------------- |
 * | message queue    | `HERALD_QUEUE`       | `herald.in.<topic>`               | work queue (gone once acked)  |
 * | exception queue  | `HERALD_EXCEPTIONS`  | `herald.exc.<topic>`              | work queue                    |
 * | dead letters     | `HERALD_DLQ`         | `herald.dlq.<topic>`, `herald.dlq._unknown`, `herald.dlq._body.<topic>` | kept until replayed, purged or past `pipeline.deadLetters` limits |
 * | rules and pauses | KV `herald_rules`    | `default`, `topic.<T>`, `pause.all`, `pause.topic.<T>` | latest value |
 * | poison marks     | KV `herald_poison`   | `<stream>.<seq>`, `death.<node>.<actor>` | latest value, a day at most |
 * | scheduled        | `HERALD_SCHEDULED`   | `herald.sched.<topic>`            | kept until released or cancelled |
 * | released marks   | `HERALD_RELEASED`    | `herald.released.<topic>.<id>`    | a day, 100 000 at most        |
 * | clock probes     | `HERALD_CLOCK`       | `herald.clock.<prober>`           | the latest per prober, a minute |
 *
 * Each configured topic has its own durable consumer on the queue (`subqueue-<topic>`) and on the
 * exception queue (`retry-<topic>`), so a paused, slow or backlogged topic never stands in front of
 * another topic's messages. Messages on subjects of no configured topic are swept into dead letters
 * by the master (see sweeper.ts). Topic names starting with "_" are reserved for the subjects above.
 * Scheduled delivery's streams are read and written by runtime/scheduled/.
 */
import type { DeadReason, Envelope } from "./types.js";

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
  /** Of a fan-out topic: the one channel this letter is for (its envelope names only it). */
  channel?: string;
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
