/**
 * The SQL a PostgreSQL collector runs, built from the config. Pure. Every identifier from the config
 * goes through {@link quoteIdent}; every value (cursor, limit, settle time) is a bind parameter, so
 * no text from the config or the table ever becomes SQL.
 *
 * The cursor is keyset pagination on (updatedAtColumn, keyColumn): each batch asks for rows after
 * the last one collected, in that order, so rows sharing an updated_at across a batch boundary are
 * all collected (the key breaks the tie) and no OFFSET rescans the table. Both parts travel as the
 * columns' own text forms: PostgreSQL parses them back to exactly the same value (timestamps keep
 * their microseconds; a JS Date would cut them to milliseconds and re-collect or skip rows). An
 * index on (updatedAtColumn, keyColumn) makes every batch an index range scan.
 */

/** The cursor of a PostgreSQL collector: the last collected row's updated_at and key, as text. */
export interface PgCursor {
  ts: string;
  key: string;
}

/** What the queries need from the config. */
export interface PgQueryConfig {
  table: string;
  keyColumn: string;
  updatedAtColumn: string;
  recipientColumn?: string;
  topicColumn?: string;
  dataColumns?: string[];
  settleMs: number;
}

/** Output names of the cursor columns; prefixed so they cannot be mistaken for the table's own. */
export const TS_ALIAS = "__herald_ts";
export const KEY_ALIAS = "__herald_key";
export const MS_ALIAS = "__herald_ms";
export const INTERNAL_COLUMNS: readonly string[] = [TS_ALIAS, KEY_ALIAS, MS_ALIAS];

/** Type OIDs of date, timestamp and timestamptz: updated_at columns whose lag can be measured. */
export const TIME_TYPE_OIDS: ReadonlySet<number> = new Set([1082, 1114, 1184]);

/** `name` as a quoted identifier: `"Orders"`, with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes("\0")) throw new Error(`invalid identifier ${JSON.stringify(name)}`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.table` or `table` as quoted identifiers (the config refuses more than one dot). */
export function quoteTable(table: string): string {
  return table.split(".").map(quoteIdent).join(".");
}

/** The selected columns besides the cursor: the data columns plus recipient and topic, or `t.*`. */
function selected(c: PgQueryConfig): string {
  if (!c.dataColumns) return "t.*";
  const cols = [...new Set([...c.dataColumns, c.recipientColumn, c.topicColumn].filter((x): x is string => x !== undefined))];
  return cols.map((x) => `t.${quoteIdent(x)}`).join(", ");
}

/**
 * Selects no rows but names every configured column, so a missing table or column fails at once
 * with PostgreSQL's own message, and the result's field types tell whether updated_at is a time.
 */
export function probeQuery(c: PgQueryConfig): string {
  const u = quoteIdent(c.updatedAtColumn);
  const k = quoteIdent(c.keyColumn);
  return `SELECT ${selected(c)}, t.${u} AS ${quoteIdent(TS_ALIAS)}, t.${k} AS ${quoteIdent(KEY_ALIAS)} FROM ${quoteTable(c.table)} AS t LIMIT 0`;
}

/**
 * The next batch after `cursor` (null: from the first row). `timeColumn`: updatedAtColumn is a
 * date/timestamp, so its epoch milliseconds are selected too (lag, id time) and settleMs applies.
 */
export function batchQuery(c: PgQueryConfig, cursor: PgCursor | null, limit: number, timeColumn: boolean): { text: string; values: unknown[] } {
  const u = `t.${quoteIdent(c.updatedAtColumn)}`;
  const k = `t.${quoteIdent(c.keyColumn)}`;
  const values: unknown[] = [];
  const param = (v: unknown) => {
    values.push(v);
    return `$${values.length}`;
  };
  const where = [`${u} IS NOT NULL`];
  // The parameters take the columns' types from the row comparison: no cast written here can
  // disagree with the column (timestamp vs timestamptz, int vs text keys).
  if (cursor) where.push(`(${u}, ${k}) > (${param(cursor.ts)}, ${param(cursor.key)})`);
  if (timeColumn && c.settleMs > 0) where.push(`${u} <= now() - ${param(c.settleMs)}::float8 * interval '1 millisecond'`);
  const ms = timeColumn ? `, extract(epoch FROM ${u})::float8 * 1000 AS ${quoteIdent(MS_ALIAS)}` : "";
  const text =
    `SELECT ${selected(c)}, ${u}::text AS ${quoteIdent(TS_ALIAS)}, ${k}::text AS ${quoteIdent(KEY_ALIAS)}${ms}` +
    ` FROM ${quoteTable(c.table)} AS t WHERE ${where.join(" AND ")}` +
    ` ORDER BY ${u}, ${k} LIMIT ${param(limit)}`;
  return { text, values };
}

/** The newest row's cursor (`startAt: "now"`): collection then starts after it. */
export function latestQuery(c: PgQueryConfig): string {
  const u = `t.${quoteIdent(c.updatedAtColumn)}`;
  const k = `t.${quoteIdent(c.keyColumn)}`;
  return (
    `SELECT ${u}::text AS ${quoteIdent(TS_ALIAS)}, ${k}::text AS ${quoteIdent(KEY_ALIAS)} FROM ${quoteTable(c.table)} AS t` +
    ` WHERE ${u} IS NOT NULL ORDER BY ${u} DESC, ${k} DESC LIMIT 1`
  );
}

/** A cursor read back from a checkpoint, or undefined if it is not a PostgreSQL cursor. */
export function asPgCursor(value: unknown): PgCursor | null | undefined {
  if (value === null || value === undefined) return null;
  const v = value as Partial<PgCursor>;
  return typeof v === "object" && typeof v.ts === "string" && typeof v.key === "string" ? { ts: v.ts, key: v.key } : undefined;
}
