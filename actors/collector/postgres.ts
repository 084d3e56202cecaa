/**
 * The PostgreSQL source: a small `pg` pool per collector, parameterised queries only (sql.ts).
 * Sessions run in UTC with ISO dates, and timestamps reach us as PostgreSQL's text, so cursors and
 * `data` keep microseconds and read the same on every node.
 */
import pg from "pg";
import type { PostgresCollectorConfig } from "../../runtime/config/schema.js";
import type { Logger } from "../../runtime/log.js";
import { rowToItem } from "./rows.js";
import { causeText, SourceError, type Batch, type Source } from "./source.js";
import { asPgCursor, batchQuery, KEY_ALIAS, latestQuery, probeQuery, TIME_TYPE_OIDS, TS_ALIAS, type PgCursor } from "./sql.js";

/** date, timestamp, timestamptz and their arrays: kept as text (a JS Date loses microseconds). */
const TEXT_TYPES = new Set([1082, 1114, 1184, 1182, 1115, 1185]);

export class PostgresSource implements Source {
  readonly kind = "postgres" as const;
  private readonly pool: pg.Pool;
  /** Set once the probe succeeded: updatedAtColumn is a date/time column. */
  private timeColumn: boolean | undefined;

  /**
   * @param cfg the collector's config.
   * @param where the collector's config path (`collectors[2]`), named in errors.
   */
  constructor(
    private readonly cfg: PostgresCollectorConfig,
    private readonly where: string,
    private readonly log: Logger,
  ) {
    this.pool = new pg.Pool({
      ...(cfg.connectionString !== undefined
        ? { connectionString: cfg.connectionString }
        : { host: cfg.host, port: cfg.port ?? 5432, database: cfg.database, user: cfg.user, password: cfg.password }),
      // One query at a time per collector; a second connection covers a broken first one.
      max: 2,
      connectionTimeoutMillis: cfg.connectTimeoutMs,
      statement_timeout: cfg.queryTimeoutMs,
      // The client-side guard, for a server that stops answering altogether.
      query_timeout: cfg.queryTimeoutMs + 1000,
      idleTimeoutMillis: 30_000,
      application_name: `herald:${cfg.name}`,
      types: {
        getTypeParser: ((oid: number, format?: "text" | "binary") =>
          TEXT_TYPES.has(oid) ? (v: string) => v : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // Set per connection rather than as a startup `options` parameter, which PgBouncer refuses.
    // pg queues this ahead of any query on the new connection. A timestamp without time zone is
    // then read as UTC (lag), and every timestamp in `data` is ISO text in UTC.
    this.pool.on("connect", (client) => {
      client.query("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'").catch((err: unknown) => {
        this.log.warn("could not set the session's time zone and date style", { error: causeText(err) });
      });
    });
    // An idle connection that breaks (server restart) is reported here; without a listener it would
    // be an uncaught error that kills the thread.
    this.pool.on("error", (err) => this.log.debug("idle PostgreSQL connection closed", { error: causeText(err) }));
  }

  async initialCursor(): Promise<PgCursor | null> {
    if (this.cfg.startAt !== "now") return null;
    await this.probe();
    const r = await this.query(latestQuery(this.cfg), []);
    const row = r.rows[0];
    return row ? { ts: String(row[TS_ALIAS]), key: String(row[KEY_ALIAS]) } : null;
  }

  async fetch(cursorValue: unknown, limit: number): Promise<Batch> {
    const cursor = asPgCursor(cursorValue);
    if (cursor === undefined) {
      throw new SourceError(
        `the checkpoint holds ${JSON.stringify(cursorValue)}, not a PostgreSQL cursor { ts, key }: delete checkpoint.${this.cfg.name} in the collectors bucket to collect again from startAt`,
      );
    }
    const timeColumn = await this.probe();
    const q = batchQuery(this.cfg, cursor, limit, timeColumn);
    const r = await this.query(q.text, q.values);
    const mapping = { ...this.cfg, source: `collector:${this.cfg.name}` };
    let next: PgCursor | null = cursor;
    const items = r.rows.map((row: Record<string, unknown>) => {
      const { item, cursor: after } = rowToItem(row, mapping);
      next = after;
      return item;
    });
    return { items, cursor: next, more: r.rows.length === limit };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  /** Checks the table and columns once (until it succeeds) and learns updatedAtColumn's type. */
  private async probe(): Promise<boolean> {
    if (this.timeColumn !== undefined) return this.timeColumn;
    const r = await this.query(probeQuery(this.cfg), []);
    const field = r.fields.find((f) => f.name === TS_ALIAS);
    const timeColumn = field !== undefined && TIME_TYPE_OIDS.has(field.dataTypeID);
    if (!timeColumn && this.cfg.settleMs > 0) {
      throw new SourceError(`${this.where}.settleMs needs updatedAtColumn "${this.cfg.updatedAtColumn}" to be a date or timestamp column`);
    }
    this.timeColumn = timeColumn;
    return timeColumn;
  }

  private async query(text: string, values: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, values);
    } catch (err) {
      throw new SourceError(describePgError(err, this.cfg, this.where, target(this.cfg)), { cause: err });
    }
  }
}

/** `host:port/database`, never the password. */
function target(cfg: PostgresCollectorConfig): string {
  if (cfg.connectionString !== undefined) {
    try {
      const u = new URL(cfg.connectionString);
      return `${u.hostname || "localhost"}:${u.port || 5432}${u.pathname || ""}`;
    } catch {
      return "the configured connectionString";
    }
  }
  return `${cfg.host}:${cfg.port ?? 5432}/${cfg.database ?? cfg.user ?? ""}`;
}

/**
 * One line an operator can act on: what failed, at which PostgreSQL, and which config key to check.
 * Pure (exported for tests).
 */
export function describePgError(err: unknown, cfg: Pick<PostgresCollectorConfig, "table" | "queryTimeoutMs">, where: string, at: string): string {
  const code = (err as { code?: unknown })?.code;
  const text = causeText(err);
  switch (code) {
    case "42P01":
      return `PostgreSQL at ${at}: ${text} (check ${where}.table = "${cfg.table}"; names are case-sensitive as written)`;
    case "3F000":
      return `PostgreSQL at ${at}: ${text} (check the schema in ${where}.table = "${cfg.table}")`;
    case "42703":
      return `PostgreSQL at ${at}: ${text} (check ${where}: keyColumn, updatedAtColumn, recipientColumn, topicColumn, dataColumns)`;
    case "42501":
      return `PostgreSQL at ${at}: ${text} (the user needs SELECT on ${cfg.table})`;
    case "57014":
      return `PostgreSQL at ${at}: query cancelled after ${where}.queryTimeoutMs = ${cfg.queryTimeoutMs} ms (${text}); an index on (updatedAtColumn, keyColumn) keeps batches fast`;
    case "3D000":
    case "28P01":
    case "28000":
      return `PostgreSQL at ${at} refused the connection: ${text} (check ${where}'s connection settings)`;
    default:
      if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return `PostgreSQL at ${at}: ${text} (SQLSTATE ${code})`;
      return `cannot reach PostgreSQL at ${at}: ${text}`;
  }
}
