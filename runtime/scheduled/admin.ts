/**
 * Scheduled messages as `herald scheduled list|cancel` and the node's HTTP API see them: listed
 * from the stream (no master needed), and cancelled by deleting the record.
 *
 * A cancel is refused within {@link CANCEL_CUTOFF_MS} of the due time, judged on the server's
 * clock: the releaser reads the record {@link CHECK_AHEAD_MS} before the due time, and what it has
 * found then it releases; a message released cannot be called back. A message already released is told apart from an unknown id by
 * its release mark (kept a day).
 */
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { errorText, HeraldError } from "../errors.js";
import { names, type Names } from "../names.js";
import { monotonicNow } from "../platform/index.js";
import { jsMsgStoredAt, readScheduled, type ReleasedMark, type ScheduledMessage } from "./store.js";
import type { ServerClock } from "./server-clock.js";

/** A message due sooner than this (or already due) can no longer be cancelled, ms. */
export const CANCEL_CUTOFF_MS = 1000;
/**
 * How long before its time the releaser checks that a message was not cancelled, ms: inside the
 * cut-off, so a cancel that was allowed has deleted the record before the check reads it.
 */
export const CHECK_AHEAD_MS = CANCEL_CUTOFF_MS / 2;
/** A listing that receives nothing for this long has read all there is, ms. */
const IDLE_END_MS = 2000;

/** One scheduled message as listed (`herald scheduled list --json`, `GET /v1/scheduled`). */
export interface ScheduledRow {
  id: string;
  topic: string;
  /** Due time, ISO, on the server's clock. */
  due: string;
  dueAt: number;
  to?: string;
  /** When it was accepted (`createdAt`, the ingesting host's clock: shown, never compared). */
  createdAt: string;
  source: string;
  /** Sequence in the scheduled stream. */
  seq: number;
}

export function scheduledRow(m: ScheduledMessage): ScheduledRow {
  return {
    id: m.id,
    topic: m.topic,
    due: new Date(m.dueAt).toISOString(),
    dueAt: m.dueAt,
    ...(m.envelope.to === undefined ? {} : { to: m.envelope.to }),
    createdAt: new Date(m.envelope.createdAt).toISOString(),
    source: m.envelope.source,
    seq: m.seq,
  };
}

/** Every scheduled message (of `topic`, if given), earliest due first. */
export async function listScheduled(nc: NatsConnection, config: Pick<HeraldConfig, "subjectPrefix" | "limits">, topic?: string): Promise<ScheduledMessage[]> {
  const n = names(config.subjectPrefix);
  const jsm = await jetstreamManager(nc);
  const filter = topic === undefined ? n.scheduledSubjects : n.sched(topic);
  const count = await countScheduled(jsm, n, filter);
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(n.scheduledStream, { filter_subjects: filter });
  const messages = await consumer.consume();
  const out: ScheduledMessage[] = [];
  // Records deleted after the count was taken never come: a quiet consumer has delivered all.
  let idle = setTimeout(() => messages.stop(), IDLE_END_MS);
  try {
    for await (const m of messages) {
      clearTimeout(idle);
      const read = readScheduled({ subject: m.subject, seq: m.seq, data: m.data, storedAt: jsMsgStoredAt(m) }, n, config.limits);
      if (read.ok) out.push(read.message);
      if (m.info.pending === 0) break;
      idle = setTimeout(() => messages.stop(), IDLE_END_MS);
    }
  } finally {
    clearTimeout(idle);
    messages.stop();
  }
  return out.sort((a, b) => a.dueAt - b.dueAt || a.seq - b.seq);
}

/** Scheduled messages in the stream (of one subject filter); 0 when the stream does not exist yet. */
export async function countScheduled(jsm: JetStreamManager, n: Names, filter = n.scheduledSubjects): Promise<number> {
  try {
    const info = await jsm.streams.info(n.scheduledStream, { subjects_filter: filter });
    return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return 0;
    throw new HeraldError("NATS", `cannot read stream ${n.scheduledStream}: ${errorText(err)}`);
  }
}

export interface CancelOutcome {
  cancelled: ScheduledRow;
}

/**
 * Cancels scheduled message `id` (of `topic`, needed only when the id is scheduled on several).
 * @throws HeraldError `UNKNOWN_ID` (no such scheduled message), `TOO_LATE` (due within
 *   {@link CANCEL_CUTOFF_MS}, or already released) or `USAGE` (the id is on several topics).
 */
export async function cancelScheduled(
  nc: NatsConnection,
  config: Pick<HeraldConfig, "subjectPrefix" | "limits" | "topics">,
  clock: ServerClock,
  id: string,
  topic?: string,
): Promise<CancelOutcome> {
  const n = names(config.subjectPrefix);
  const [found, synced] = await Promise.all([listScheduled(nc, config, topic).then((all) => all.filter((m) => m.id === id)), clock.ready ? true : clock.sync()]);
  if (found.length > 1) {
    throw new HeraldError("USAGE", `${JSON.stringify(id)} is scheduled on topics ${found.map((m) => m.topic).join(", ")}: say which with --topic (HTTP: ?topic=)`);
  }
  const jsm = await jetstreamManager(nc);
  const m = found[0];
  if (m === undefined) {
    const mark = await releaseMark(jsm, n, id, topic === undefined ? Object.keys(config.topics) : [topic]);
    if (mark) {
      const at = mark.releasedAt === undefined ? "" : ` at ${new Date(mark.releasedAt).toISOString()}`;
      throw new HeraldError("TOO_LATE", `scheduled message ${JSON.stringify(id)} (topic ${mark.topic}) was already released${at}, due ${new Date(mark.dueAt).toISOString()}: it can no longer be cancelled`);
    }
    const where = topic === undefined ? "" : ` on topic ${topic}`;
    throw new HeraldError("UNKNOWN_ID", `no scheduled message ${JSON.stringify(id)}${where}: see herald scheduled list (a message released more than a day ago is no longer known)`);
  }
  const now = synced ? clock.now() : undefined;
  if (now === undefined) throw new HeraldError("NATS", `cannot read the NATS server's clock (${n.clockStream}), so cannot tell whether ${JSON.stringify(id)} is still far enough from its time; try again`);
  const left = m.dueAt - now;
  if (left < CANCEL_CUTOFF_MS) {
    const when = left <= 0 ? `was due ${Math.round(-left)} ms ago and is being released` : `is due in ${Math.round(left)} ms`;
    throw new HeraldError("TOO_LATE", `scheduled message ${JSON.stringify(id)} (topic ${m.topic}) ${when}: a message cannot be cancelled within ${CANCEL_CUTOFF_MS} ms of its time`);
  }
  const judgedAt = monotonicNow();
  try {
    await jsm.streams.deleteMessage(n.scheduledStream, m.seq, false);
  } catch (err) {
    // Gone between the read and the delete: released (it was past the cut-off after all) or cancelled.
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) {
      throw new HeraldError("TOO_LATE", `scheduled message ${JSON.stringify(id)} (topic ${m.topic}) was released or cancelled meanwhile`);
    }
    throw new HeraldError("NATS", `could not delete scheduled message ${JSON.stringify(id)}: ${errorText(err)}`);
  }
  // A delete that took so long that the releaser may have checked the record before it: say so.
  if (left - (monotonicNow() - judgedAt) < CHECK_AHEAD_MS) {
    throw new HeraldError("TOO_LATE", `scheduled message ${JSON.stringify(id)} (topic ${m.topic}) was deleted only ${Math.round(left - (monotonicNow() - judgedAt))} ms before its time: it may still be delivered`);
  }
  return { cancelled: scheduledRow(m) };
}

async function releaseMark(jsm: JetStreamManager, n: Names, id: string, topics: string[]): Promise<ReleasedMark | undefined> {
  for (const topic of topics) {
    const m = await jsm.direct.getMessage(n.releasedStream, { last_by_subj: n.released(topic, id) }).catch(() => null);
    if (!m) continue;
    try {
      return m.json<ReleasedMark>();
    } catch {
      return { id, topic, dueAt: 0 };
    }
  }
  return undefined;
}
