/**
 * Turning a stored message back into something the pipeline can act on: a queued message into its
 * envelope, an exception entry into its retry. Stream content is untrusted (any client may publish
 * on `herald.in.*` and `herald.exc.*`, and set any header), so everything is decoded strictly and
 * checked before anything relies on it; what fails becomes a dead letter with the reason.
 */
import type { JsMsg } from "@nats-io/jetstream";
import { ulid } from "ulid";
import { decodeUntrusted, encode } from "../codec/index.js";
import type { TopicConfig } from "../config/index.js";
import { seededRandom } from "../rules/random.js";
import { decodeBudgets, decodeSubmission, envelopeProblem, validateSubmission, type DataLimits } from "./envelope.js";
import type { Original } from "./queue-io.js";
import { type DeadLetter, type ExceptionEntry } from "./streams.js";
import type { DeadReason, Envelope } from "./types.js";
import { HEADER_ENVELOPE } from "../names.js";

export type Parsed = { ok: true; envelope: Envelope } | { ok: false; dead: DeadLetter };

export interface ParseContext {
  prefix: string;
  topics: Record<string, TopicConfig>;
  limits: DataLimits;
  /** Wall-clock ms, for `deadAt`. */
  now: () => number;
}

/** ms since epoch at which JetStream stored the message (the server's clock). */
export function storedAtMs(m: JsMsg): number {
  return m.time.getTime();
}

/** The topic named by a stored message's subject (`herald.in.<topic>`, `herald.exc.<topic>`). */
export function subjectTopic(m: JsMsg, prefix: string): string {
  const rest = m.subject.slice(prefix.length + 1);
  return rest.slice(rest.indexOf(".") + 1);
}

/**
 * The envelope of a queued message. Messages queued by Herald's own ingest carry a msgpack
 * envelope (and the `Herald-Envelope` header, which any client can forge, so it is checked like
 * the rest); anything else was published raw on `herald.in.<topic>` and is validated now. Its id
 * (when the client gave none) and createdAt derive from the stream record, so a redelivery yields
 * the same envelope.
 */
export function parseQueued(m: JsMsg, ctx: ParseContext): Parsed {
  const topic = subjectTopic(m, ctx.prefix);
  const storedAt = storedAtMs(m);
  const seq = m.info.streamSequence;
  if (m.headers?.get(HEADER_ENVELOPE) === "1") {
    const decoded = decodeUntrusted(m.data, decodeBudgets(ctx.limits));
    if (!decoded.ok) return { ok: false, dead: unreadableLetter(m, ctx, `malformed queued envelope: ${decoded.error}`) };
    const problem = envelopeProblem(decoded.value, topic, ctx.limits);
    if (problem) return { ok: false, dead: unreadableLetter(m, ctx, `malformed queued envelope: ${problem}`) };
    return { ok: true, envelope: decoded.value as Envelope };
  }
  const decoded = decodeSubmission(m.data, ctx.limits);
  if (!decoded.ok) return { ok: false, dead: unreadableLetter(m, ctx, decoded.error) };
  const headerId = m.headers?.get("Nats-Msg-Id");
  const input = decoded.value;
  const withId =
    headerId && typeof input === "object" && input !== null && !Array.isArray(input) && !("id" in input)
      ? { ...(input as object), id: headerId }
      : input;
  const result = validateSubmission(withId, {
    topic,
    source: "nats",
    topics: ctx.topics,
    limits: ctx.limits,
    now: () => storedAt,
    newId: () => ulid(storedAt, seededRandom(seq)),
  });
  if (result.ok) return result;
  return { ok: false, dead: unreadableLetter(m, ctx, result.error, result.reason) };
}

export type ReadEntry = { ok: true; entry: ExceptionEntry } | { ok: false; dead: DeadLetter };

/** Longest wait a Herald 0.1 entry (a wall-clock due time) is given, ms. */
const LEGACY_MAX_DELAY_MS = 3_600_000;

/**
 * An exception entry, checked before anything relies on it: `herald.exc.*` is a subject any
 * client could publish on, and a malformed entry must become a dead letter, not wedge the loop.
 */
export function readExceptionEntry(m: JsMsg, ctx: ParseContext): ReadEntry {
  const topic = subjectTopic(m, ctx.prefix);
  const decoded = decodeUntrusted(m.data, decodeBudgets(ctx.limits));
  const fail = (problem: string): ReadEntry => ({ ok: false, dead: unreadableLetter(m, ctx, `malformed exception entry: ${problem}`) });
  if (!decoded.ok) return fail(decoded.error);
  const entry = decoded.value as Partial<ExceptionEntry> | null;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return fail("not an object");
  const problem = envelopeProblem(entry.envelope, topic, ctx.limits);
  if (problem) return fail(problem);
  if (!Number.isInteger(entry.attempts) || (entry.attempts as number) < 1) return fail(`"attempts" must be an integer ≥ 1`);
  let delayMs = entry.delayMs;
  if (delayMs === undefined && typeof entry.nextAttemptAt === "number") {
    // Herald 0.1 wrote the writer's wall-clock due time; read once, then never written again.
    delayMs = Math.min(LEGACY_MAX_DELAY_MS, Math.max(0, entry.nextAttemptAt - ctx.now()));
  }
  if (typeof delayMs !== "number" || !Number.isFinite(delayMs) || delayMs < 0) return fail(`"delayMs" must be a number ≥ 0`);
  return {
    ok: true,
    entry: {
      envelope: entry.envelope as Envelope,
      error: typeof entry.error === "string" ? entry.error : "",
      attempts: entry.attempts as number,
      firstFailedAt: typeof entry.firstFailedAt === "number" ? entry.firstFailedAt : storedAtMs(m),
      delayMs,
    },
  };
}

/** Dead letters keep at most this much of invalid input: enough to see what was wrong. */
const MAX_RAW_KEPT = 64 * 1024;

/** The dead letter of a stored message that could not be handled at all. */
export function unreadableLetter(m: JsMsg, ctx: Pick<ParseContext, "prefix" | "now">, error: string, reason: DeadReason = "invalid"): DeadLetter {
  const raw = m.data.length > MAX_RAW_KEPT ? m.data.slice(0, MAX_RAW_KEPT) : m.data;
  return {
    id: `invalid:${m.info.streamSequence}`,
    topic: subjectTopic(m, ctx.prefix),
    reason,
    error,
    attempts: 0,
    deadAt: ctx.now(),
    raw,
    subject: m.subject,
  };
}

/**
 * What a dead letter of `m` must preserve so that a replay can bring the message back: a queued
 * message's own bytes; for an exception entry, its envelope (the entry fitted, so the envelope does).
 */
export function originalOf(m: JsMsg, prefix: string, entry?: ExceptionEntry): Original {
  if (entry !== undefined) {
    return { subject: `${prefix}.in.${entry.envelope.topic}`, data: encode({ ...entry.envelope, attempts: 0 }), envelopeHeader: true };
  }
  return { subject: m.subject, data: m.data, envelopeHeader: m.headers?.get(HEADER_ENVELOPE) === "1" };
}
