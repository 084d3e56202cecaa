/**
 * What makes a submission acceptable: the one check every ingest path uses (`herald.in.<topic>`,
 * `herald.submit`, HTTP, collectors, `herald publish`, `herald dlq replay`), so a message means the
 * same thing however it arrived. Pure: the clock and the id source are injected, nothing here
 * throws, and every check costs time linear in the size of the input (no input can make it slow:
 * values arrive from the strict decoder of runtime/codec, which cannot build shared references).
 */
import { Buffer } from "node:buffer";
import { decodeUntrusted, type DecodeBudgets } from "../codec/index.js";
import type { TopicConfig } from "../config/index.js";
import { MAX_FANOUT_CHANNELS } from "../config/topics.js";
import { checkSchedule } from "./schedule.js";
import type { Envelope, Source } from "./types.js";

/**
 * What one message may hold (the config's `limits`); every refusal names the key it hit.
 */
export interface DataLimits {
  /** Largest accepted `data`, as UTF-8 JSON, in bytes (`limits.maxPayloadBytes`). */
  maxPayloadBytes: number;
  /** Deepest nesting of `data`; `data` itself is level 1 (`limits.maxDepth`). */
  maxDepth: number;
  /** Most values (of any kind) in `data` (`limits.maxValues`). */
  maxValues: number;
  /** Most keys in one object of `data` (`limits.maxKeys`). */
  maxKeys: number;
  /** Longest string in `data`, in UTF-8 bytes (`limits.maxStringBytes`). */
  maxStringBytes: number;
}

/** The decoder's budgets for a whole payload under `limits`: the envelope is one level above `data`. */
export function decodeBudgets(limits: DataLimits): DecodeBudgets {
  return {
    maxDepth: limits.maxDepth + 1,
    depthOffset: 1,
    maxValues: limits.maxValues + 32,
    maxKeys: Math.max(limits.maxKeys, 32),
    maxStringBytes: Math.max(limits.maxStringBytes, 4096),
  };
}

/** What {@link validateSubmission} needs besides the input. */
export interface SubmissionContext {
  /** Topic named by the transport (the `<topic>` of `herald.in.<topic>`); absent for submit/HTTP. */
  topic?: string;
  source: Source;
  /** The configured topics; a submission to any other topic is refused with `unknown-topic`. */
  topics: Record<string, TopicConfig>;
  /** What one message may hold (`limits`). */
  limits: DataLimits;
  /** ms since epoch; becomes `createdAt`. */
  now: () => number;
  /** A new ULID, used when the caller gives no `id`. */
  newId: () => string;
}

export type SubmissionResult =
  | { ok: true; envelope: Envelope }
  | { ok: false; reason: "invalid" | "unknown-topic"; error: string };

export type DecodeResult = { ok: true; value: unknown } | { ok: false; error: string };

/** Longest accepted `to`, in characters. */
export const MAX_TO_LENGTH = 1024;
/** A channel's name in a fan-out topic (as topics.<name>.channels[].name). */
const CHANNEL_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** A caller's own id: also the JetStream dedup key (`Nats-Msg-Id`), so kept header- and subject-safe. */
export const CALLER_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const FIELDS = ["topic", "to", "data", "id", "deliverAt", "delayMs"];
/** Fields of the envelope Herald sets itself; named so the caller learns why they are refused. */
const HERALD_FIELDS = new Set(["createdAt", "attempts", "source", "channels"]);
/** Keys that could reach an object's prototype in naive code downstream (templates, merges). */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
const MAX_LISTED_TOPICS = 10;

/**
 * Decides whether `input` is an acceptable submission and, if so, builds its envelope: the
 * caller's `id` or a new ULID, `createdAt: now()`, `attempts: 0`. Accepted fields are `topic`,
 * `to`, `data` (a JSON object; absent means `{}`), `id`, and `deliverAt` or `delayMs` (scheduled
 * delivery, see schedule.ts); anything else is refused by name.
 * Never throws: every problem comes back as a one-line `error`.
 */
export function validateSubmission(input: unknown, ctx: SubmissionContext): SubmissionResult {
  try {
    return check(input, ctx);
  } catch (err) {
    // Only exotic inputs get here (a Proxy or getter that throws): still an answer, not a crash.
    return invalid(`could not read the message: ${errorText(err)}`);
  }
}

function check(input: unknown, ctx: SubmissionContext): SubmissionResult {
  if (!isPlainObject(input)) return invalid(`the message must be an object, got ${kind(input)}`);
  for (const key of Object.keys(input)) {
    if (FIELDS.includes(key)) continue;
    if (HERALD_FIELDS.has(key)) return invalid(`"${key}" is set by Herald and cannot be submitted`);
    return invalid(`unknown field ${JSON.stringify(key)}: a message has only ${FIELDS.map((f) => `"${f}"`).join(", ")}`);
  }

  if (input.topic !== undefined && typeof input.topic !== "string") return wrongType("topic", "a string", input.topic);
  if (ctx.topic !== undefined && input.topic !== undefined && input.topic !== ctx.topic) {
    return invalid(`"topic" is ${shown(input.topic)} but the message was sent to topic ${shown(ctx.topic)}`);
  }
  const topic = input.topic ?? ctx.topic;
  if (topic === undefined || topic === "") return invalid(`"topic" is required`);
  if (!Object.hasOwn(ctx.topics, topic)) return unknownTopic(topic, ctx.topics);

  if (input.to !== undefined) {
    if (typeof input.to !== "string") return wrongType("to", "a string", input.to);
    if (input.to.length === 0 || input.to.length > MAX_TO_LENGTH) {
      return invalid(`"to" must be 1–${MAX_TO_LENGTH} characters, got ${input.to.length}`);
    }
    if (!wellFormed(input.to)) return invalid(`"to" ${NOT_UNICODE}`);
  }

  if (input.id !== undefined) {
    if (typeof input.id !== "string") return wrongType("id", "a string", input.id);
    if (!CALLER_ID.test(input.id)) {
      return invalid(`"id" must be 1–128 characters of letters, digits, ".", "_", ":" or "-", got ${shown(input.id)}`);
    }
  }

  const scheduled = checkSchedule(input.deliverAt, input.delayMs, ctx.now());
  if (!scheduled.ok) return invalid(scheduled.error);

  const data = input.data === undefined ? {} : input.data;
  if (!isPlainObject(data)) return wrongType("data", "an object", data);
  const bad = checkJson(data, "data", 1, ctx.limits, { values: 0 });
  if (bad) return invalid(bad);
  // Safe to stringify now: checkJson bounded the values, the keys and every string.
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > ctx.limits.maxPayloadBytes) {
    return invalid(`"data" is ${size} bytes as JSON, over the limit of ${ctx.limits.maxPayloadBytes} bytes (limits.maxPayloadBytes)`);
  }

  const envelope: Envelope = {
    id: input.id ?? ctx.newId(),
    topic,
    ...(input.to === undefined ? {} : { to: input.to }),
    data,
    createdAt: ctx.now(),
    source: ctx.source,
    attempts: 0,
    ...scheduled.schedule,
  };
  return { ok: true, envelope };
}

/**
 * Why `value`, read from the queue as an envelope Herald's own ingest made (it carries the
 * `Herald-Envelope` header), is not one; undefined when it is. Any client can set that header on
 * `herald.in.<topic>`, so the shape is checked before anything relies on it: a forged or corrupt
 * envelope becomes a dead letter instead of crashing or looping downstream. The size limit is not
 * re-applied (a message queued under a larger `limits.maxPayloadBytes` stays deliverable); the
 * structural limits are, since they bound what reading it costs.
 */
export function envelopeProblem(value: unknown, subjectTopic: string, limits: DataLimits): string | undefined {
  try {
    if (!isPlainObject(value)) return `the envelope must be an object, got ${kind(value)}`;
    const { id, topic, to, data, createdAt, source, attempts, channels, deliverAt, delayMs } = value;
    if (typeof id !== "string" || !CALLER_ID.test(id)) return `"id" must be 1–128 characters of letters, digits, ".", "_", ":" or "-", got ${kind(id)}`;
    if (topic !== subjectTopic) return `"topic" is ${kind(topic)} but the envelope was queued on topic ${shown(subjectTopic)}`;
    if (to !== undefined && (typeof to !== "string" || to.length === 0 || to.length > MAX_TO_LENGTH || !wellFormed(to))) {
      return `"to" must be a string of 1–${MAX_TO_LENGTH} characters, got ${kind(to)}`;
    }
    if (!isPlainObject(data)) return wrongTypeText("data", "an object", data);
    const bad = checkJson(data, "data", 1, limits, { values: 0 });
    if (bad) return bad;
    if (typeof createdAt !== "number" || !Number.isFinite(createdAt)) return wrongTypeText("createdAt", "a number", createdAt);
    if (typeof source !== "string") return wrongTypeText("source", "a string", source);
    if (!Number.isInteger(attempts) || (attempts as number) < 0) return wrongTypeText("attempts", "an integer ≥ 0", attempts);
    if (deliverAt !== undefined && (typeof deliverAt !== "number" || !Number.isFinite(deliverAt))) return wrongTypeText("deliverAt", "a number", deliverAt);
    if (delayMs !== undefined && (!Number.isInteger(delayMs) || (delayMs as number) < 0)) return wrongTypeText("delayMs", "an integer ≥ 0", delayMs);
    if (channels !== undefined) return channelsProblem(channels);
    return undefined;
  } catch (err) {
    return `could not read the envelope: ${errorText(err)}`;
  }
}

/** Channel names as an envelope carries them: 1–16 distinct names (README, Fan-out). */
function channelsProblem(channels: unknown): string | undefined {
  const expected = `a list of 1–${MAX_FANOUT_CHANNELS} distinct channel names`;
  if (!Array.isArray(channels) || channels.length === 0 || channels.length > MAX_FANOUT_CHANNELS) return wrongTypeText("channels", expected, channels);
  for (const c of channels) if (typeof c !== "string" || !CHANNEL_NAME.test(c)) return `"channels" must be ${expected}, got ${kind(c)} in it`;
  if (new Set(channels).size !== channels.length) return `"channels" must be ${expected}: it names one twice`;
  return undefined;
}

/**
 * Walks `value` (already known to be a plain object or array at `path`) and returns the first
 * problem: a value JSON cannot carry faithfully, a forbidden key, or a limit passed (depth, keys
 * of one object, values in all, string length). Depth is checked before descending and every
 * value is counted as it is visited, so the walk stops early on absurd input.
 */
function checkJson(value: object, path: string, depth: number, limits: DataLimits, seen: { values: number }): string | undefined {
  if (depth > limits.maxDepth) return `"${path}" is nested deeper than ${limits.maxDepth} levels (limits.maxDepth)`;
  const keys = Array.isArray(value) ? undefined : Object.keys(value);
  if (keys !== undefined && keys.length > limits.maxKeys) {
    return `"${path}" has ${keys.length} keys, over the limit of ${limits.maxKeys} (limits.maxKeys)`;
  }
  const size = keys === undefined ? (value as unknown[]).length : keys.length;
  seen.values += size;
  if (seen.values > limits.maxValues) return `"data" holds more than ${limits.maxValues} values (limits.maxValues)`;
  for (let i = 0; i < size; i++) {
    const key: string | number = keys === undefined ? i : keys[i]!;
    const child = keys === undefined ? (value as unknown[])[i] : (value as Record<string, unknown>)[key];
    const at = childPath(path, key);
    if (typeof key === "string" && FORBIDDEN_KEYS.has(key)) {
      return `"${at}": the key "${key}" is not allowed (it could reach an object's prototype)`;
    }
    if (typeof key === "string" && !wellFormed(key)) return `a key of "${path}" ${NOT_UNICODE}`;
    if (typeof key === "string" && key.length * 3 > limits.maxStringBytes && Buffer.byteLength(key) > limits.maxStringBytes) {
      return `a key of "${path}" is ${Buffer.byteLength(key)} bytes, over the limit of ${limits.maxStringBytes} (limits.maxStringBytes)`;
    }
    if (child === null || typeof child === "boolean") continue;
    if (typeof child === "string") {
      if (!wellFormed(child)) return `"${at}" ${NOT_UNICODE}`;
      if (child.length * 3 > limits.maxStringBytes && Buffer.byteLength(child) > limits.maxStringBytes) {
        return `"${at}" is ${Buffer.byteLength(child)} bytes, over the limit of ${limits.maxStringBytes} (limits.maxStringBytes)`;
      }
      continue;
    }
    if (typeof child === "number") {
      if (Number.isFinite(child)) continue;
      return wrongTypeText(at, "a finite number", child);
    }
    if (Array.isArray(child) || isPlainObject(child)) {
      const bad = checkJson(child, at, depth + 1, limits, seen);
      if (bad) return bad;
      continue;
    }
    return wrongTypeText(at, "a JSON value (string, number, boolean, null, array or object)", child);
  }
  return undefined;
}

/**
 * Decodes a submitted payload: JSON when its first non-whitespace byte is `{`, msgpack otherwise
 * (the rule of `herald.in.<topic>`), strictly: invalid UTF-8, msgpack extensions (shared
 * references, records, timestamps…) and payloads past the decoding budgets are refused. Never
 * throws; the error says which format failed and why.
 */
export function decodeSubmission(bytes: Uint8Array, limits: DataLimits): DecodeResult {
  if (!(bytes instanceof Uint8Array)) return { ok: false, error: `payload must be bytes, got ${kind(bytes)}` };
  const decoded = decodeUntrusted(bytes, decodeBudgets(limits));
  return decoded.ok ? { ok: true, value: decoded.value } : { ok: false, error: decoded.error };
}

/** `data.a[0].b`, or `data["a b"]` for keys that are not plain names (cut short: keys are caller text). */
function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$-]*$/.test(key) && key.length <= 60 ? `${path}.${key}` : `${path}[${shown(key)}]`;
}

function unknownTopic(topic: string, topics: Record<string, TopicConfig>): SubmissionResult {
  const known = Object.keys(topics);
  const listed = known.slice(0, MAX_LISTED_TOPICS).map((t) => JSON.stringify(t)).join(", ");
  const more = known.length > MAX_LISTED_TOPICS ? `, … (${known.length} in all)` : "";
  const hint = known.length === 0 ? "no topics are configured" : `known topics: ${listed}${more}`;
  return { ok: false, reason: "unknown-topic", error: `unknown topic ${shown(topic)}: ${hint}` };
}

function invalid(error: string): SubmissionResult {
  return { ok: false, reason: "invalid", error };
}

function wrongType(field: string, expected: string, got: unknown): SubmissionResult {
  return invalid(wrongTypeText(field, expected, got));
}

function wrongTypeText(field: string, expected: string, got: unknown): string {
  return `"${field}" must be ${expected}, got ${kind(got)}`;
}

/**
 * JSON can spell a lone surrogate (`"\ud800"`) that has no UTF-8 form: accepted, it would be
 * re-encoded as invalid UTF-8 and refused by the next stage, so it is refused at the door.
 */
const NOT_UNICODE = "is not well-formed Unicode: it holds a lone surrogate (such as \\ud800), which has no UTF-8 form";

function wellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Plain objects only: what JSON and msgpack maps decode to (not arrays, dates, buffers, classes). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The kind of a wrong value, for `got …`: `array`, `null`, `binary`, `NaN`, `string "x"`. */
function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Uint8Array) return "binary";
  if (value instanceof Date) return "date";
  if (typeof value === "number") return Number.isFinite(value) ? `number ${value}` : String(value);
  if (typeof value === "string") return `string ${shown(value)}`;
  if (typeof value === "object") return isPlainObject(value) ? "object" : (value.constructor?.name ?? "object");
  return typeof value;
}

/** A caller's string in a message, quoted and cut short so a huge value cannot flood a log line. */
function shown(text: string): string {
  return text.length > 60 ? `${JSON.stringify(text.slice(0, 60))}…` : JSON.stringify(text);
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

