/**
 * The dead letters (messages that failed for good, with their reason) as `herald dlq` and the
 * node's HTTP API read, replay and purge them, by stream sequence so every read ends even while
 * new letters arrive.
 *
 * Letters are stream content any client could have written, so they are decoded strictly and a
 * replayed envelope is checked like any submission before it goes back on the queue.
 */
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { decodeUntrusted, encode } from "../codec/index.js";
import type { HeraldConfig } from "../config/index.js";
import { errorText, HeraldError } from "../errors.js";
import { decodeBudgets, envelopeProblem, type DataLimits } from "./envelope.js";
import type { DeadLetter } from "./streams.js";
import { HEADER_ENVELOPE, HEADER_ID, type Names } from "../names.js";

/** One dead letter as read from the stream; `letter` is absent when its payload did not decode. */
export interface StoredLetter {
  seq: number;
  id: string;
  topic: string;
  letter?: DeadLetter;
  /** Why the payload could not be decoded. */
  undecodable?: string;
}

/** Sequences read in parallel: enough to hide round trips, few enough not to flood the server. */
const READ_BATCH = 64;

/**
 * Which letters a command covers: all of them, or one topic's. A configured topic's letters have
 * a subject of their own; letters of unconfigured topics share `herald.dlq._unknown` and are told
 * apart by the topic they record.
 */
export interface LetterScope {
  topic?: string;
  /** Subject to read (undefined: every letter). */
  subject?: string;
  /** Subject of the letters' kept originals, when the scope has one of its own. */
  bodySubject?: string;
}

export function letterScope(config: Pick<HeraldConfig, "topics">, n: Names, topic: string | undefined): LetterScope {
  if (topic === undefined) return {};
  if (Object.hasOwn(config.topics, topic)) return { topic, subject: n.dlq(topic), bodySubject: n.dlqBody(topic) };
  return { topic, subject: n.dlqUnknown };
}

/**
 * The dead letters in `scope`, oldest first, at most `limit`, and how many there are in all.
 * Reads the sequences that existed when it started, skipping deleted ones and kept originals.
 */
export async function readLetters(
  jsm: JetStreamManager,
  n: Names,
  scope: LetterScope,
  limit: number,
  limits: DataLimits,
): Promise<{ letters: StoredLetter[]; total: number }> {
  const info = await streamInfo(jsm, n.dlqStream, scope.subject ?? n.dlqSubjects);
  const subjects = info.state.subjects ?? {};
  const isBody = (subject: string) => subject.startsWith(n.dlqBody(""));
  let total = 0;
  for (const [subject, count] of Object.entries(subjects)) if (!isBody(subject)) total += count;
  const letters: StoredLetter[] = [];
  const last = info.state.last_seq;
  for (let seq = info.state.first_seq; total > 0 && seq <= last && letters.length < limit; seq += READ_BATCH) {
    const seqs = Array.from({ length: Math.min(READ_BATCH, last - seq + 1) }, (_, i) => seq + i);
    const msgs = await Promise.all(seqs.map((s) => jsm.streams.getMessage(n.dlqStream, { seq: s })));
    for (const m of msgs) {
      if (!m || isBody(m.subject) || (scope.subject !== undefined && m.subject !== scope.subject)) continue;
      const letter = toLetter(m, n, limits);
      if (scope.topic !== undefined && letter.topic !== scope.topic) continue;
      letters.push(letter);
      if (letters.length >= limit) break;
    }
  }
  // Letters of unconfigured topics share a subject: the count is of the subject, the list exact.
  if (scope.topic !== undefined && scope.bodySubject === undefined && letters.length < limit) total = letters.length;
  return { letters, total };
}

async function streamInfo(jsm: JetStreamManager, stream: string, filter: string) {
  try {
    return await jsm.streams.info(stream, { subjects_filter: filter });
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new HeraldError("NO_CLUSTER", `no dead-letter stream ${stream} on this NATS: has the cluster been started? (herald start)`);
    }
    throw new HeraldError("NATS", `cannot read the dead-letter stream ${stream}: ${errorText(err)}`);
  }
}

function toLetter(m: StoredMsg, n: Names, limits: DataLimits): StoredLetter {
  const subjectTopic = m.subject === n.dlqUnknown ? "" : m.subject.slice(n.dlq("").length);
  const headerId = m.header?.get(HEADER_ID) || undefined;
  const decoded = decodeUntrusted(m.data, { ...decodeBudgets(limits), maxStringBytes: Math.max(limits.maxStringBytes, m.data.length) });
  const letter = decoded.ok ? (decoded.value as DeadLetter | null) : undefined;
  if (!decoded.ok || typeof letter !== "object" || letter === null || Array.isArray(letter)) {
    return { seq: m.seq, id: headerId ?? `seq:${m.seq}`, topic: subjectTopic, undecodable: decoded.ok ? "not a dead letter" : decoded.error };
  }
  const id = typeof letter.id === "string" ? letter.id : (headerId ?? `seq:${m.seq}`);
  return { seq: m.seq, id, topic: typeof letter.topic === "string" ? letter.topic : subjectTopic, letter };
}

/**
 * A letter as a plain row (`herald dlq list --json`, `GET /v1/dead-letters`). A fan-out topic's
 * letter names its channel (`channel`); other letters have no such key.
 */
export function letterRow(l: StoredLetter) {
  const channel = l.letter?.channel;
  return {
    seq: l.seq,
    id: l.id,
    topic: l.topic,
    ...(typeof channel === "string" ? { channel } : {}),
    reason: l.letter?.reason ?? null,
    error: l.letter?.error ?? `undecodable dead letter: ${l.undecodable}`,
    attempts: l.letter?.attempts ?? null,
    deadAt: l.letter?.deadAt ?? null,
    // The original did not fit in the letter: it is kept whole beside it, at this sequence.
    bodySeq: l.letter?.body?.seq ?? null,
  };
}

/** Reasons whose letters keep the original input, which a replay can put back as it came. */
const REPLAYABLE_RAW = new Set(["poison", "unknown-topic", "too-large"]);

/**
 * Puts a letter's message back on the queue (attempts reset), waits for the JetStream ack, and
 * only then deletes the letter (and its kept original), so a failure in between leaves a copy,
 * never none. Resolves with why it cannot be replayed, if it cannot; a failed publish throws
 * (HeraldError REPLAY_FAILED).
 */
export async function replayLetter(js: JetStreamClient, jsm: JetStreamManager, n: Names, l: StoredLetter, limits: DataLimits): Promise<{ refused: string } | undefined> {
  const again = await replayable(jsm, n, l, limits);
  if ("refused" in again) return again;
  const h = natsHeaders();
  if (again.envelopeHeader) h.set(HEADER_ENVELOPE, "1");
  try {
    // A msg id of its own: the original id may still be inside the queue's dedup window.
    await js.publish(again.subject, again.data, { msgID: `${l.id}:replay:${l.seq}`, headers: h });
  } catch (err) {
    throw new HeraldError("REPLAY_FAILED", `cannot replay ${l.id}: publishing to ${again.subject} failed (${errorText(err)}): is the cluster running? (herald status)`);
  }
  await deleteLetter(jsm, n, l);
  return undefined;
}

/** Deletes one letter and the original it keeps beside it, if any. */
export async function deleteLetter(jsm: JetStreamManager, n: Names, l: StoredLetter): Promise<void> {
  await jsm.streams.deleteMessage(n.dlqStream, l.seq);
  if (l.letter?.body) await jsm.streams.deleteMessage(n.dlqStream, l.letter.body.seq).catch(() => false);
}

/** What a replay of `l` publishes, or why it cannot be replayed. */
export async function replayable(
  jsm: JetStreamManager,
  n: Names,
  l: StoredLetter,
  limits: DataLimits,
): Promise<{ subject: string; data: Uint8Array; envelopeHeader: boolean } | { refused: string }> {
  const letter = l.letter;
  if (!letter) return { refused: `the letter cannot be read (${l.undecodable})` };
  if (letter.envelope !== undefined) {
    const env = letter.envelope;
    const problem = envelopeProblem(env, typeof env?.topic === "string" ? env.topic : "", limits);
    if (problem) return { refused: `its envelope is not valid (${problem})` };
    return { subject: n.in(env.topic), data: encode({ ...env, attempts: 0 }), envelopeHeader: true };
  }
  const subject = typeof letter.subject === "string" && letter.subject.startsWith(n.in("")) ? letter.subject : undefined;
  if (subject === undefined || !REPLAYABLE_RAW.has(letter.reason)) {
    return { refused: `the input was never a valid message (reason ${letter.reason ?? "unknown"})` };
  }
  if (letter.body !== undefined) {
    const body = await jsm.streams.getMessage(n.dlqStream, { seq: letter.body.seq }).catch(() => null);
    if (!body) return { refused: `its kept original (sequence ${letter.body.seq}) is gone` };
    return { subject, data: body.data, envelopeHeader: letter.envelopeHeader === true };
  }
  if (!(letter.raw instanceof Uint8Array)) return { refused: "the letter keeps no copy of the input" };
  return { subject, data: letter.raw, envelopeHeader: letter.envelopeHeader === true };
}

/** Deletes the dead letters in `scope` (and their kept originals); resolves with how many. */
export async function purgeLetters(jsm: JetStreamManager, n: Names, scope: LetterScope, limits: DataLimits): Promise<number> {
  let purged: number;
  if (scope.topic === undefined) {
    const subjects = (await streamInfo(jsm, n.dlqStream, n.dlqSubjects)).state.subjects ?? {};
    const bodies = Object.entries(subjects).reduce((sum, [subject, count]) => sum + (subject.startsWith(n.dlqBody("")) ? count : 0), 0);
    purged = (await jsm.streams.purge(n.dlqStream)).purged - bodies;
  } else if (scope.bodySubject !== undefined) {
    await streamInfo(jsm, n.dlqStream, scope.subject!);
    purged = (await jsm.streams.purge(n.dlqStream, { filter: scope.subject! })).purged;
    await jsm.streams.purge(n.dlqStream, { filter: scope.bodySubject });
  } else {
    // An unconfigured topic's letters share their subject with other topics': one by one.
    const { letters } = await readLetters(jsm, n, scope, Infinity, limits);
    for (const l of letters) await deleteLetter(jsm, n, l);
    purged = letters.length;
  }
  return purged;
}
