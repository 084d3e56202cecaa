/**
 * `herald dlq list|replay|purge`: the dead letters (messages that failed for good, with their
 * reason), read by stream sequence so every command ends even while new letters arrive.
 */
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { decode, encode } from "../../codec.js";
import { errorText, HeraldError } from "../../errors.js";
import { HEADER_ENVELOPE, HEADER_ID, pipelineNames, type DeadLetter, type PipelineNames } from "../../pipeline/streams.js";
import { connectCli, loadFromFlags, serversFor, type CommonFlags } from "../context.js";

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
  const prefix = loaded.config.subjectPrefix;
  const n = pipelineNames(prefix);
  const filter = flags.topic === undefined ? undefined : n.dlq(flags.topic);
  const nc = await connectCli(serversFor(flags, loaded));
  try {
    const jsm = await jetstreamManager(nc);
    if (action === "purge") return await purge(jsm, n, filter, flags.topic);
    const { letters, total } = await readLetters(jsm, n, filter, limit);
    if (action === "list") return list(letters, total, flags);
    return await replay(nc, jsm, prefix, n, flags.all ? letters : pick(letters, ids));
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
 * The dead letters (of one subject when `filter` is given), oldest first, at most `limit`, and how
 * many there are in all. Reads the sequences that existed when it started, skipping deleted ones.
 */
export async function readLetters(
  jsm: JetStreamManager,
  n: PipelineNames,
  filter: string | undefined,
  limit: number,
): Promise<{ letters: StoredLetter[]; total: number }> {
  const info = await streamInfo(jsm, n.dlqStream, filter);
  const total = filter === undefined ? info.state.messages : (info.state.subjects?.[filter] ?? 0);
  const letters: StoredLetter[] = [];
  const last = info.state.last_seq;
  for (let seq = info.state.first_seq; total > 0 && seq <= last && letters.length < limit; seq += READ_BATCH) {
    const seqs = Array.from({ length: Math.min(READ_BATCH, last - seq + 1) }, (_, i) => seq + i);
    const msgs = await Promise.all(seqs.map((s) => jsm.streams.getMessage(n.dlqStream, { seq: s })));
    for (const m of msgs) {
      if (!m || (filter !== undefined && m.subject !== filter)) continue;
      letters.push(toLetter(m, n));
      if (letters.length >= limit) break;
    }
  }
  return { letters, total };
}

async function streamInfo(jsm: JetStreamManager, stream: string, filter: string | undefined) {
  try {
    return await jsm.streams.info(stream, filter === undefined ? undefined : { subjects_filter: filter });
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new HeraldError("NO_CLUSTER", `no dead-letter stream ${stream} on this NATS: has the cluster been started? (herald start)`);
    }
    throw new HeraldError("NATS", `cannot read the dead-letter stream ${stream}: ${errorText(err)}`);
  }
}

function toLetter(m: StoredMsg, n: PipelineNames): StoredLetter {
  const subjectTopic = m.subject.slice(n.dlq("").length);
  const headerId = m.header?.get(HEADER_ID) || undefined;
  try {
    const letter = decode<DeadLetter>(m.data);
    return { seq: m.seq, id: letter.id ?? headerId ?? `seq:${m.seq}`, topic: letter.topic ?? subjectTopic, letter };
  } catch (err) {
    return { seq: m.seq, id: headerId ?? `seq:${m.seq}`, topic: subjectTopic, undecodable: errorText(err) };
  }
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

/**
 * Puts each letter's envelope back on the queue (attempts reset), waits for the JetStream ack, and
 * only then deletes the letter, so a failure in between leaves a copy, never none.
 */
async function replay(nc: NatsConnection, jsm: JetStreamManager, prefix: string, n: PipelineNames, letters: StoredLetter[]): Promise<number> {
  if (letters.length === 0) {
    process.stdout.write("no dead letters to replay\n");
    return 0;
  }
  const js = jetstream(nc);
  let refused = 0;
  for (const l of letters) {
    const envelope = l.letter?.envelope;
    if (!envelope) {
      const reason = l.letter?.reason ?? "undecodable";
      process.stderr.write(`cannot replay ${l.id}: the input was never a valid message (reason ${reason}); see herald dlq list\n`);
      refused++;
      continue;
    }
    const subject = `${prefix}.in.${envelope.topic}`;
    const h = natsHeaders();
    h.set(HEADER_ENVELOPE, "1");
    try {
      // A msg id of its own: the original id is still inside the queue's dedup window.
      await js.publish(subject, encode({ ...envelope, attempts: 0 }), { msgID: `${envelope.id}:replay:${l.seq}`, headers: h });
    } catch (err) {
      throw new HeraldError("REPLAY_FAILED", `cannot replay ${l.id}: publishing to ${subject} failed (${errorText(err)}): is the cluster running? (herald status)`);
    }
    await jsm.streams.deleteMessage(n.dlqStream, l.seq);
    process.stdout.write(`replayed ${l.id}\n`);
  }
  return refused === 0 ? 0 : 1;
}

async function purge(jsm: JetStreamManager, n: PipelineNames, filter: string | undefined, topic: string | undefined): Promise<number> {
  await streamInfo(jsm, n.dlqStream, undefined);
  const r = await jsm.streams.purge(n.dlqStream, filter === undefined ? undefined : { filter });
  const s = r.purged === 1 ? "" : "s";
  process.stdout.write(`purged ${r.purged} dead letter${s}${topic === undefined ? "" : ` of topic ${topic}`}\n`);
  return 0;
}
