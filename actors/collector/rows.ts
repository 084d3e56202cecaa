/**
 * A PostgreSQL row as a collected item: which columns become `data`, `to` and the topic, and the
 * row's id and cursor. Pure.
 */
import { collectedId } from "./ids.js";
import type { CollectedItem } from "./source.js";
import { INTERNAL_COLUMNS, KEY_ALIAS, MS_ALIAS, TS_ALIAS, type PgCursor } from "./sql.js";

export interface RowMapping {
  /** Envelope source, `collector:<name>`. */
  source: string;
  topic?: string;
  topicColumn?: string;
  recipientColumn?: string;
  /** Columns copied into `data`; absent: every column of the table. */
  dataColumns?: string[];
}

/** One row of a batch query as an item, and the cursor just past it. */
export function rowToItem(row: Record<string, unknown>, m: RowMapping): { item: CollectedItem; cursor: PgCursor } {
  const ts = String(row[TS_ALIAS]);
  const key = String(row[KEY_ALIAS]);
  const ms = typeof row[MS_ALIAS] === "number" ? (row[MS_ALIAS] as number) : undefined;
  const data: Record<string, unknown> = {};
  const columns = m.dataColumns ?? Object.keys(row).filter((c) => !INTERNAL_COLUMNS.includes(c));
  for (const c of columns) data[c] = jsonSafe(row[c]);
  const topic = m.topic ?? text(row[m.topicColumn!]);
  const to = m.recipientColumn === undefined ? undefined : text(row[m.recipientColumn]);
  const submission = { ...(topic === undefined ? {} : { topic }), ...(to === undefined ? {} : { to }), data };
  const item: CollectedItem = {
    id: collectedId(m.source, [key, ts], ms),
    submission,
    timeText: ts,
    ...(ms === undefined || !Number.isFinite(ms) ? {} : { timeMs: ms }),
  };
  return { item, cursor: { ts, key } };
}

/** A column value as text (`to`, topic); NULL is absent. */
function text(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  return JSON.stringify(jsonSafe(value));
}

/**
 * A column value as JSON can carry it. Timestamps already arrive as PostgreSQL's text (the pool's
 * type parsers keep their microseconds); what remains is bytea (base64), Dates inside arrays (ISO),
 * bigint and non-finite floats (text).
 */
export function jsonSafe(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object") return value;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map(jsonSafe);
  const out: Record<string, unknown> = {};
  // defineProperty: a json column's "__proto__" key stays a key (and is then refused by name).
  for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: jsonSafe(v), enumerable: true, writable: true, configurable: true });
  return out;
}
