/**
 * The scheduled stream's records: a scheduled message is its envelope (msgpack, with the
 * `Herald-Envelope` header) on `herald.sched.<topic>`, deduplicated on `<topic>:<id>` as the queue
 * is. Its due time is the envelope's `deliverAt`, or its `delayMs` after the record's stored
 * timestamp: both on the server's clock. What is read back is checked like every stored message
 * (any client with the node role's rights could have written it).
 */
import type { JetStreamClient, JsMsg, PubAck } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { decodeUntrusted, encode } from "../codec/index.js";
import { TooLargeError } from "../errors.js";
import { decodeBudgets, envelopeProblem, type DataLimits } from "../pipeline/envelope.js";
import { HEADER_ROOM_BYTES } from "../pipeline/queue-io.js";
import { dueAt } from "../pipeline/schedule.js";
import type { Envelope } from "../pipeline/types.js";
import { HEADER_ENVELOPE, HEADER_ID, names, type Names } from "../names.js";
import type { DueEntry } from "./due-index.js";

/** A scheduled message as read from the stream. */
export interface ScheduledMessage extends DueEntry {
  envelope: Envelope;
  /** When the server stored the record, ms since the epoch (server clock). */
  storedAt: number;
}

/** The parts of a stored record (a JsMsg or a StoredMsg) that reading it needs. */
export interface StoredRecord {
  subject: string;
  seq: number;
  data: Uint8Array;
  /** The record's stored timestamp, ms since the epoch. */
  storedAt: number;
}

/** A delivered message's stored timestamp, ms since the epoch, to the microsecond. */
export function jsMsgStoredAt(m: JsMsg): number {
  return Number(m.timestampNanos / 1000n) / 1000;
}

export type ReadScheduled = { ok: true; message: ScheduledMessage } | { ok: false; error: string };

/** The scheduled message a stored record holds, or why it holds none. */
export function readScheduled(r: StoredRecord, n: Names, limits: DataLimits): ReadScheduled {
  const prefix = n.sched("");
  if (!r.subject.startsWith(prefix)) return { ok: false, error: `${r.subject} is not a scheduled subject (${n.scheduledSubjects})` };
  const topic = r.subject.slice(prefix.length);
  const decoded = decodeUntrusted(r.data, decodeBudgets(limits));
  if (!decoded.ok) return { ok: false, error: `malformed scheduled envelope: ${decoded.error}` };
  const problem = envelopeProblem(decoded.value, topic, limits);
  if (problem) return { ok: false, error: `malformed scheduled envelope: ${problem}` };
  const envelope = decoded.value as Envelope;
  return { ok: true, message: { seq: r.seq, id: envelope.id, topic, dueAt: dueAt(envelope, r.storedAt), envelope, storedAt: r.storedAt } };
}

/**
 * The envelope a released message goes to the queue with: its due time written as `deliverAt`, so
 * it reads the same wherever it goes next, and `delayMs` dropped (it counted from a record that is gone).
 */
export function releasedEnvelope(env: Envelope, due: number): Envelope {
  const { delayMs: _delay, ...rest } = env;
  return { ...rest, deliverAt: due };
}

/** Writes scheduled messages and their release marks. */
export class ScheduledWriter {
  readonly names: Names;

  constructor(
    private readonly js: JetStreamClient,
    prefix: string,
    /** The server's `max_payload`, bytes. */
    private readonly maxPayload: number,
  ) {
    this.names = names(prefix);
  }

  /**
   * Stores a scheduled message; `duplicate` when the same id was already scheduled for the topic
   * within the duplicate window.
   * @throws TooLargeError when the encoded envelope does not fit the server's `max_payload`.
   */
  async schedule(env: Envelope): Promise<PubAck> {
    const data = encode(env);
    const room = this.maxPayload - HEADER_ROOM_BYTES;
    if (data.length > room) throw new TooLargeError(`scheduled message ${env.id}`, data.length, room);
    const h = natsHeaders();
    h.set(HEADER_ENVELOPE, "1");
    h.set(HEADER_ID, env.id);
    return this.js.publish(this.names.sched(env.topic), data, { msgID: `${env.topic}:${env.id}`, headers: h });
  }

  /** Marks a message released (kept a day), so `herald scheduled cancel` can say so. */
  async markReleased(m: DueEntry, releasedAt: number | undefined): Promise<void> {
    const mark: ReleasedMark = { id: m.id, topic: m.topic, dueAt: m.dueAt, ...(releasedAt === undefined ? {} : { releasedAt }) };
    await this.js.publish(this.names.released(m.topic, m.id), JSON.stringify(mark));
  }
}

/** A release mark (JSON on `herald.released.<topic>.<id>`). */
export interface ReleasedMark {
  id: string;
  topic: string;
  dueAt: number;
  /** Server time of the release, ms, as the releaser estimated it. */
  releasedAt?: number;
}
