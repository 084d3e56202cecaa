/**
 * The HTTP source's protocol, pure. `GET <url>?<cursorParam>=<cursor>` answers
 * `{ "messages": [ … ], "cursor": "…" }`: the messages after the given cursor (none on the first
 * request: from the beginning), and the cursor to send next. A message is
 * `{ id?, updatedAt?, topic?, to?, data? }`:
 * - `id` (string or number): the source's identity of the message; with `updatedAt` (ms since epoch
 *   or an ISO time) it makes the message id, so a changed message is collected again as a new one.
 *   Without `id`, the position in the page (cursor sent + index) stands in, which is stable only if
 *   the source answers a cursor with the same page every time.
 * - `topic` defaults to the collector's `topic`; `to` and `data` are as at any ingest path.
 * Any other field makes the message invalid (a dead letter naming it), like a bad publish.
 */
import { collectedId } from "./ids.js";
import type { CollectedItem } from "./source.js";

/** A cursor of the HTTP source: whatever the source returned (string or number), or null at first. */
export type HttpCursor = string | number | null;

export type ParsedPage = { ok: true; messages: unknown[]; cursor: HttpCursor | undefined } | { ok: false; error: string };

/** Checks the shape of an answer; `cursor` undefined when the source sent none (or null). */
export function parsePage(body: unknown): ParsedPage {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, error: `expected a JSON object { messages, cursor }, got ${Array.isArray(body) ? "an array" : body === null ? "null" : typeof body}` };
  }
  const { messages, cursor } = body as { messages?: unknown; cursor?: unknown };
  if (!Array.isArray(messages)) return { ok: false, error: `"messages" must be an array, got ${messages === undefined ? "nothing" : typeof messages}` };
  if (cursor !== undefined && cursor !== null && typeof cursor !== "string" && typeof cursor !== "number") {
    return { ok: false, error: `"cursor" must be a string or a number, got ${typeof cursor}` };
  }
  if (messages.length > 0 && (cursor === undefined || cursor === null)) {
    return { ok: false, error: `a page with ${messages.length} messages must carry the "cursor" after them` };
  }
  return { ok: true, messages, cursor: cursor ?? undefined };
}

/** One message of a page as an item. `sent` is the cursor the page was asked for. */
export function messageToItem(message: unknown, index: number, sent: HttpCursor, opts: { source: string; topic?: string }): CollectedItem {
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return { id: collectedId(opts.source, ["at", String(sent ?? ""), String(index)]), submission: message };
  }
  const { id, updatedAt, ...rest } = message as Record<string, unknown>;
  const timeMs = toMs(updatedAt);
  const identity = id !== undefined ? ["id", JSON.stringify(id), updatedAt === undefined ? "" : JSON.stringify(updatedAt)] : ["at", String(sent ?? ""), String(index)];
  const submission = rest.topic === undefined && opts.topic !== undefined ? { ...rest, topic: opts.topic } : rest;
  return {
    id: collectedId(opts.source, identity, timeMs),
    submission,
    ...(timeMs === undefined ? {} : { timeMs, timeText: typeof updatedAt === "string" ? updatedAt : new Date(timeMs).toISOString() }),
  };
}

function toMs(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/** Cursors compare as JSON (a number and its string differ: the source chose the type). */
export function sameCursor(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
