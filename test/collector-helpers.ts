/**
 * Shared by the collector tests: a real PostgreSQL (required, never skipped), a schema per test,
 * and a sink that records what Herald pushes on a NATS subject.
 */
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";

/** Where the tests find PostgreSQL: trust auth, database `test` (CI's .ci/run starts it). */
export const PG_URL = process.env.HERALD_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A pool on the test database; fails the test with what to do when PostgreSQL does not answer. */
export async function requirePostgres(): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4, connectionTimeoutMillis: 5000 });
  pool.on("error", () => undefined);
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await pool.end().catch(() => undefined);
    const why = err instanceof AggregateError ? err.errors.map(String).join("; ") : String(err);
    throw new Error(
      `the collector tests need PostgreSQL at ${PG_URL} (trust auth, database "test") and it did not answer: ${why}. ` +
        "Start PostgreSQL (CI's .ci/run does) or point HERALD_TEST_PG_URL at one.",
    );
  }
  return pool;
}

/**
 * One pool for a test file: opened before its tests, closed after them. Each test awaits the
 * returned promise first, so a missing PostgreSQL fails every test by name (never "skipped").
 */
export function sharedPostgres(): () => Promise<pg.Pool> {
  let postgres: Promise<pg.Pool>;
  beforeAll(() => {
    postgres = requirePostgres();
    postgres.catch(() => undefined);
  });
  afterAll(async () => {
    await (await postgres.catch(() => undefined))?.end();
  });
  return () => postgres;
}

/** A fresh schema for one test; `drop()` removes it with everything in it. */
export async function tempSchema(pool: pg.Pool): Promise<{ name: string; drop(): Promise<void> }> {
  const name = `herald_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await pool.query(`CREATE SCHEMA ${name}`);
  return { name, drop: async () => void (await pool.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)) };
}

export interface Pushed {
  json: Record<string, any>;
  /** performance.now() at arrival. */
  at: number;
}

/** Records every message on `subject` (JSON), with its arrival time. */
export function sink(nc: NatsConnection, subject: string): Pushed[] {
  const got: Pushed[] = [];
  nc.subscribe(subject, {
    callback: (_err, m: Msg) => {
      got.push({ json: m.json(), at: performance.now() });
    },
  });
  return got;
}

/** How many times each row key arrived (by `data.<keyField>`). */
export function countsBy(pushed: Pushed[], keyField: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const p of pushed) {
    const k = String(p.json.data?.[keyField]);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}
