/**
 * `herald dlq list|replay|purge`: the dead letters (messages that failed for good, with their
 * reason), read by stream sequence so every command ends even while new letters arrive.
 *
 * Letters are stream content any client could have written, so they are decoded strictly and a
 * replayed envelope is checked like any submission before it goes back on the queue.
 */
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { decodeUntrusted, encode } from "../../codec/index.js";
import type { HeraldConfig } from "../../config/index.js";
import { errorText, HeraldError } from "../../errors.js";
import { decodeBudgets, envelopeProblem, type DataLimits } from "../../pipeline/envelope.js";
import { type DeadLetter } from "../../pipeline/streams.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { HEADER_ENVELOPE, HEADER_ID, type Names, names } from "../../names.js";

export interface DlqFlags extends CommonFlags {
  topic?: string;
  json?: boolean;
  limit?: string;
  all?: boolean;
}

/** One dead letter as read from the stream; `letter` is absent when its payload did not decode. */
export interface StoredLetter {
  seq: number;
  id: string;
  topic: string;
  letter?: DeadLetter;
  /** Why the payload could not be decoded. */
  undecodable?: string;
}

const DEFAULT_LIMIT = 100;
/** Sequences read in parallel: enough to hide round trips, few enough not to flood the server. */
const READ_BATCH = 64;
/** ERROR column width in the table. */
const ERROR_WIDTH = 60;

/** `herald dlq list|replay|purge`. */
export async function dlqCommand(action: string | undefined, ids: string[], flags: DlqFlags): Promise<number> {
  if (action !== "list" && action !== "replay" && action !== "purge") {
    throw new HeraldError("USAGE", `unknown dlq action "${action ?? ""}": use "herald dlq list", "herald dlq replay" or "herald dlq purge"`);
  }
  if (action !== "replay" && ids.length > 0) throw new HeraldError("USAGE", `herald dlq ${action}: unexpected argument "${ids[0]}"`);
  if (action === "replay" && ids.length === 0 && !flags.all) {
    throw new HeraldError("USAGE", "herald dlq replay needs dead-letter ids (see herald dlq list) or --all");
  }
  if (action === "replay" && ids.length > 0 && flags.all) throw new HeraldError("USAGE", "herald dlq replay: give ids or --all, not both");
  if (flags.topic !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(flags.topic)) {
    throw new HeraldError("USAGE", `--topic must be a topic name (letters, digits, "_" or "-"), got "${flags.topic}"`);
  }
  const limit = action === "list" ? parseLimit(flags.limit) : Infinity;
  const loaded = await loadFromFlags(flags);
  const { config } = loaded;
  const n = names(config.subjectPrefix);
  const scope = letterScope(config, n, flags.topic);
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const jsm = await jetstreamManager(nc);
    if (action === "purge") return await purge(jsm, n, scope, config.limits);
    const { letters, total } = await readLetters(jsm, n, scope, limit, config.limits);
    if (action === "list") return list(letters, total, flags);
    return await replay(nc, jsm, n, flags.all ? letters : pick(letters, ids), config.limits);
  } finally {
    await nc.close();
  }
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIMIT;
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1) throw new HeraldError("USAGE", `--limit must be an integer ≥ 1, got "${text}"`);
  return limit;
}

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

function list(letters: StoredLetter[], total: number, flags: DlqFlags): number {
  if (flags.json) {
    const rows = letters.map((l) => ({
      seq: l.seq,
      id: l.id,
      topic: l.topic,
      reason: l.letter?.reason ?? null,
      error: l.letter?.error ?? `undecodable dead letter: ${l.undecodable}`,
      attempts: l.letter?.attempts ?? null,
      deadAt: l.letter?.deadAt ?? null,
      // The original did not fit in the letter: it is kept whole beside it, at this sequence.
      bodySeq: l.letter?.body?.seq ?? null,
    }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else if (letters.length === 0) {
    process.stdout.write(`no dead letters${flags.topic ? ` for topic ${flags.topic}` : ""}\n`);
  } else {
    process.stdout.write(table(letters));
  }
  if (letters.length < total) process.stderr.write(`showing the oldest ${letters.length} of ${total} dead letters (--limit N for more)\n`);
  return 0;
}

function table(letters: StoredLetter[]): string {
  const header = ["ID", "TOPIC", "REASON", "ATTEMPTS", "DEAD AT", "ERROR"];
  const rows = letters.map((l) => [
    l.id,
    l.topic,
    l.letter?.reason ?? "?",
    String(l.letter?.attempts ?? "-"),
    l.letter?.deadAt === undefined ? "-" : new Date(l.letter.deadAt).toISOString().replace(/\.\d{3}Z$/, "Z"),
    clip(l.letter?.error ?? `undecodable dead letter: ${l.undecodable}`),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${[fmt(header), ...rows.map(fmt)].join("\n")}\n`;
}

/** One line of at most ERROR_WIDTH characters: errors can be long and multi-line. */
function clip(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > ERROR_WIDTH ? `${line.slice(0, ERROR_WIDTH - 1)}…` : line;
}

/** The letters with the given ids, in stream order; every id must match at least one. */
function pick(letters: StoredLetter[], ids: string[]): StoredLetter[] {
  const wanted = new Set(ids);
  const unknown = ids.filter((id) => !letters.some((l) => l.id === id));
  if (unknown.length > 0) {
    const s = unknown.length === 1 ? "" : "s";
    throw new HeraldError("UNKNOWN_ID", `no dead letter with id${s} ${unknown.join(", ")} (see herald dlq list); nothing was replayed`);
  }
  return letters.filter((l) => wanted.has(l.id));
}

/** Reasons whose letters keep the original input, which a replay can put back as it came. */
const REPLAYABLE_RAW = new Set(["poison", "unknown-topic", "too-large"]);

/**
 * Puts each letter's message back on the queue (attempts reset), waits for the JetStream ack, and
 * only then deletes the letter (and its kept original), so a failure in between leaves a copy,
 * never none.
 */
async function replay(nc: NatsConnection, jsm: JetStreamManager, n: Names, letters: StoredLetter[], limits: DataLimits): Promise<number> {
  if (letters.length === 0) {
    process.stdout.write("no dead letters to replay\n");
    return 0;
  }
  const js = jetstream(nc);
  let refused = 0;
  for (const l of letters) {
    const again = await replayable(jsm, n, l, limits);
    if ("refused" in again) {
      process.stderr.write(`cannot replay ${l.id}: ${again.refused}; see herald dlq list\n`);
      refused++;
      continue;
    }
    const h = natsHeaders();
    if (again.envelopeHeader) h.set(HEADER_ENVELOPE, "1");
    try {
      // A msg id of its own: the original id may still be inside the queue's dedup window.
      await js.publish(again.subject, again.data, { msgID: `${l.id}:replay:${l.seq}`, headers: h });
    } catch (err) {
      throw new HeraldError("REPLAY_FAILED", `cannot replay ${l.id}: publishing to ${again.subject} failed (${errorText(err)}): is the cluster running? (herald status)`);
    }
    await jsm.streams.deleteMessage(n.dlqStream, l.seq);
    if (l.letter?.body) await jsm.streams.deleteMessage(n.dlqStream, l.letter.body.seq).catch(() => false);
    process.stdout.write(`replayed ${l.id}\n`);
  }
  return refused === 0 ? 0 : 1;
}

/** What a replay of `l` publishes, or why it cannot be replayed. */
async function replayable(
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

async function purge(jsm: JetStreamManager, n: Names, scope: LetterScope, limits: DataLimits): Promise<number> {
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
    for (const l of letters) {
      await jsm.streams.deleteMessage(n.dlqStream, l.seq);
      if (l.letter?.body) await jsm.streams.deleteMessage(n.dlqStream, l.letter.body.seq).catch(() => false);
    }
    purged = letters.length;
  }
  const s = purged === 1 ? "" : "s";
  process.stdout.write(`purged ${purged} dead letter${s}${scope.topic === undefined ? "" : ` of topic ${scope.topic}`}\n`);
  return 0;
}
