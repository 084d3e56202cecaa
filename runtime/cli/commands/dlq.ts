/**
 * `herald dlq list|replay|purge`: the dead letters (messages that failed for good, with their
 * reason); reading, replaying and purging them is runtime/pipeline/dead-letters.ts.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { HeraldError } from "../../errors.js";
import { letterRow, letterScope, purgeLetters, readLetters, replayLetter, type LetterScope, type StoredLetter } from "../../pipeline/dead-letters.js";
import type { DataLimits } from "../../pipeline/envelope.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { parseLimit } from "../input.js";
import { Progress } from "../progress.js";
import { type Names, names } from "../../names.js";

export interface DlqFlags extends CommonFlags {
  topic?: string;
  json?: boolean;
  limit?: string;
  all?: boolean;
}

const DEFAULT_LIMIT = 100;
/** On a terminal, a replay of more letters than this shows a progress line instead of a line each. */
const PER_LETTER_LINES = 20;
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
  const limit = action === "list" ? parseLimit(flags.limit, DEFAULT_LIMIT) : Infinity;
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

function list(letters: StoredLetter[], total: number, flags: DlqFlags): number {
  if (flags.json) {
    const rows = letters.map(letterRow);
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
  // A CHANNEL column only when a fan-out topic's letter is listed.
  const channels = letters.some((l) => typeof l.letter?.channel === "string");
  const header = ["ID", "TOPIC", ...(channels ? ["CHANNEL"] : []), "REASON", "ATTEMPTS", "DEAD AT", "ERROR"];
  const rows = letters.map((l) => [
    l.id,
    l.topic,
    ...(channels ? [typeof l.letter?.channel === "string" ? l.letter.channel : "-"] : []),
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
  // On a terminal, many letters show one progress line instead of a line each.
  const progress = new Progress();
  const quietEach = progress.active && letters.length > PER_LETTER_LINES;
  let refused = 0;
  let done = 0;
  for (const l of letters) {
    const why = await replayLetter(js, jsm, n, l, limits);
    done++;
    if (why) {
      progress.done();
      process.stderr.write(`cannot replay ${l.id}: ${why.refused}; see herald dlq list\n`);
      refused++;
    } else if (!quietEach) process.stdout.write(`replayed ${l.id}\n`);
    if (quietEach) progress.update(`replaying dead letters: ${done} of ${letters.length}`);
  }
  progress.done();
  if (quietEach) process.stdout.write(`replayed ${done - refused} of ${letters.length} dead letters\n`);
  return refused === 0 ? 0 : 1;
}

async function purge(jsm: JetStreamManager, n: Names, scope: LetterScope, limits: DataLimits): Promise<number> {
  const purged = await purgeLetters(jsm, n, scope, limits);
  const s = purged === 1 ? "" : "s";
  process.stdout.write(`purged ${purged} dead letter${s}${scope.topic === undefined ? "" : ` of topic ${scope.topic}`}\n`);
  return 0;
}

