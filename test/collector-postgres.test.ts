/**
 * PostgreSQL collectors end to end: a real PostgreSQL, a real nats-server, real node processes.
 * Rows inserted and updated while the cluster runs arrive as pushes within about T; rows sharing
 * an updated_at across a batch boundary all arrive; a re-collection (checkpoint deleted) is dropped
 * by the queue's deduplication; status shows each collector; a misconfigured source is an error in
 * the log and in status while the node and the other collectors keep working.
 */
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { bindBucket } from "../runtime/nats/buckets.js";
import { freePort } from "../runtime/nats/server.js";
import type { ClusterStatus, CollectorStatus } from "../runtime/supervisor/status.js";
import { countsBy, PG_URL, sharedPostgres, sink, tempSchema } from "./collector-helpers.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let pool: pg.Pool;
const postgres = sharedPostgres();
let cluster: TestCluster | undefined;
let schema: { name: string; drop(): Promise<void> } | undefined;

afterEach(async () => {
  await cluster?.stop();
  await schema?.drop();
  cluster = undefined;
  schema = undefined;
});

const INTERVAL_MS = 200;
const collectorOf = (s: ClusterStatus, name: string): CollectorStatus => s.collectors.find((c) => c.name === name)!;
const running = (s: ClusterStatus) => s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));

async function messagesTable(table: string): Promise<void> {
  await pool.query(
    `CREATE TABLE ${table} (id int PRIMARY KEY, recipient text, body text NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  );
  await pool.query(`CREATE INDEX ON ${table} (updated_at, id)`);
}

describe("PostgreSQL collector", () => {
  it("collects existing rows, inserts and updates within about T; equal updated_at across batches; dedup on re-collection; status", async () => {
    pool = await postgres();
    schema = await tempSchema(pool);
    const table = `${schema.name}.messages`;
    await messagesTable(table);
    // Rows that exist before the cluster starts (startAt: beginning).
    for (let i = 1; i <= 4; i++) await pool.query(`INSERT INTO ${table} (id, recipient, body) VALUES ($1, $2, $3)`, [i, `user-${i}`, `before ${i}`]);

    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 0, collector: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { duplicateWindowMs: 600_000 },
        topics: { rows: { channel: "nats", template: { title: "Hi {{recipient}}: {{body}}" } } },
        collectors: [
          {
            name: "rows",
            kind: "postgres",
            connectionString: PG_URL,
            table,
            keyColumn: "id",
            updatedAtColumn: "updated_at",
            recipientColumn: "recipient",
            topic: "rows",
            intervalMs: INTERVAL_MS,
            batchSize: 3,
          },
        ],
      },
    });
    const c = cluster;
    const out = sink(c.nc, "herald.out.rows");
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("the node running", running, 30_000);
    await waitFor(() => out.length >= 4, { timeoutMs: 10_000, what: "the 4 rows that existed before start" });
    const first = out.find((p) => p.json.data.id === 1)!.json;
    expect(first).toMatchObject({ topic: "rows", to: "user-1", title: "Hi user-1: before 1" });
    expect(first.data).toMatchObject({ id: 1, recipient: "user-1", body: "before 1" });
    // Timestamps keep their microseconds in data (PostgreSQL's text, UTC).
    expect(first.data.updated_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,6}\+00$/);
    expect(first.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    // Inserts while running arrive within about T plus processing.
    const latencies: number[] = [];
    for (let i = 10; i < 15; i++) {
      const before = out.length;
      const t0 = performance.now();
      await pool.query(`INSERT INTO ${table} (id, recipient, body) VALUES ($1, 'u', $2)`, [i, `live ${i}`]);
      await waitFor(() => out.slice(before).find((p) => p.json.data.id === i), { timeoutMs: 5000, what: `row ${i}` });
      latencies.push(out.find((p) => p.json.data.id === i)!.at - t0);
    }
    console.log(`[collector] insert → push latency, T=${INTERVAL_MS} ms: ${latencies.map((l) => Math.round(l)).join(", ")} ms`);
    expect(Math.max(...latencies)).toBeLessThan(INTERVAL_MS + 1500);

    // Seven rows with one updated_at, and three more 1 µs apart: batches of 3 cut through the
    // group, and millisecond cursors would lose or repeat the microsecond-apart ones.
    const ts = "2030-01-01 00:00:00.000001+00";
    for (let i = 20; i < 27; i++) await pool.query(`INSERT INTO ${table} (id, body, updated_at) VALUES ($1, 'group', $2)`, [i, ts]);
    for (let i = 0; i < 3; i++) {
      await pool.query(`INSERT INTO ${table} (id, body, updated_at) VALUES ($1, 'micro', $2::timestamptz + $3 * interval '1 microsecond')`, [30 + i, ts, i + 1]);
    }
    const wanted = [...Array.from({ length: 7 }, (_, i) => 20 + i), 30, 31, 32];
    await waitFor(() => wanted.every((id) => out.some((p) => p.json.data.id === id)), { timeoutMs: 10_000, what: "the equal-timestamp group" });

    // An update of a collected row is a new message (new id), with the new data.
    const oldId = out.find((p) => p.json.data.id === 2)!.json.id;
    await pool.query(`UPDATE ${table} SET body = 'changed', updated_at = '2030-01-02 00:00:00+00' WHERE id = 2`);
    await waitFor(() => out.some((p) => p.json.data.id === 2 && p.json.data.body === "changed"), { timeoutMs: 5000, what: "the update of row 2" });
    const updated = out.find((p) => p.json.data.id === 2 && p.json.data.body === "changed")!.json;
    expect(updated.id).not.toBe(oldId);

    const total = 4 + 5 + 10 + 1;
    await waitFor(() => out.length >= total, { timeoutMs: 5000, what: `${total} pushes` });
    const counts = countsBy(out, "id");
    expect(counts.get("2")).toBe(2);
    expect([...counts.entries()].filter(([k, n]) => k !== "2" && n !== 1)).toEqual([]);

    // Status: the collector on n1, its counts, lag and no error; JSON and table alike.
    let s = await c.waitStatus("collector status", (st) => collectorOf(st, "rows")?.collected === total && collectorOf(st, "rows").state === "ok");
    const rows = collectorOf(s, "rows");
    expect(rows).toMatchObject({ kind: "postgres", node: "n1", actor: "collector-0", epoch: 1, caughtUp: true, lastError: null, consecutiveFailures: 0 });
    expect(rows.newestUpdatedAt).toBe("2030-01-02 00:00:00+00");
    expect(typeof rows.lagMs).toBe("number");
    const json = await c.cli(["status", "--json", "-c", c.configFile]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).collectors[0]).toMatchObject({ name: "rows", state: "ok", collected: total });
    const table_ = await c.cli(["status", "-c", c.configFile]);
    expect(table_.stdout).toMatch(/^COLLECTOR\s+KIND\s+STATE\s+NODE\s+LAST TICK\s+COLLECTED\s+LAG\s+LAST ERROR$/m);
    expect(table_.stdout).toMatch(new RegExp(`^rows\\s+postgres\\s+ok\\s+n1\\s+\\S+ s ago\\s+${total}\\s`, "m"));

    // Deleting the checkpoint makes the collector start over (an operator's reset): every row is
    // queued again, and the queue drops them all as duplicates. Nothing reaches the sink twice.
    const kv = await bindBucket(c.nc, "herald_collectors");
    await kv.delete("checkpoint.rows");
    await pool.query(`INSERT INTO ${table} (id, body, updated_at) VALUES (99, 'after reset', '2030-01-03 00:00:00+00')`);
    await waitFor(() => out.some((p) => p.json.data.id === 99), { timeoutMs: 5000, what: "row 99" });
    // Totals live in the checkpoint, so they restart with it: 19 rows again (all duplicates) + row 99.
    const inTable = 19;
    s = await c.waitStatus("re-collection counted as duplicates", (st) => collectorOf(st, "rows").collected === inTable + 1);
    expect(collectorOf(s, "rows").duplicates).toBe(inTable);
    expect(out.length).toBe(total + 1);
  });

  it("a misconfigured source (bad table, bad column, unreachable port) is an error in the log and status; the rest keeps working", async () => {
    pool = await postgres();
    schema = await tempSchema(pool);
    const table = `${schema.name}.messages`;
    await messagesTable(table);
    const deadPort = await freePort();
    const base = { kind: "postgres", keyColumn: "id", updatedAtColumn: "updated_at", topic: "rows", intervalMs: INTERVAL_MS, backoffMaxMs: 1000 };
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 0, collector: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        topics: { rows: { channel: "nats" } },
        collectors: [
          { ...base, name: "good", connectionString: PG_URL, table },
          { ...base, name: "no-table", connectionString: PG_URL, table: `${schema.name}.nope` },
          { ...base, name: "no-column", connectionString: PG_URL, table, updatedAtColumn: "modified" },
          { ...base, name: "no-server", host: "127.0.0.1", port: deadPort, database: "test", user: "postgres", table },
        ],
      },
    });
    const c = cluster;
    const out = sink(c.nc, "herald.out.rows");
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("the node running", running, 30_000);
    const s = await c.waitStatus(
      "three failing collectors",
      (st) => ["no-table", "no-column", "no-server"].every((n) => collectorOf(st, n).state === "failing" && collectorOf(st, n).consecutiveFailures >= 2),
      15_000,
    );
    expect(collectorOf(s, "no-table").lastError).toMatch(/relation ".*nope" does not exist \(check collectors\[1\]\.table/);
    expect(collectorOf(s, "no-column").lastError).toMatch(/column .*"?modified"? does not exist \(check collectors\[2\]: keyColumn, updatedAtColumn/);
    expect(collectorOf(s, "no-server").lastError).toMatch(new RegExp(`cannot reach PostgreSQL at 127\\.0\\.0\\.1:${deadPort}/test: .*ECONNREFUSED`));
    expect(collectorOf(s, "no-server").nextAttemptAt).not.toBeNull();
    // The good collector in the same actor keeps working.
    for (let i = 1; i <= 3; i++) await pool.query(`INSERT INTO ${table} (id, body) VALUES ($1, 'ok')`, [i]);
    await waitFor(() => out.length >= 3, { timeoutMs: 5000, what: "the good collector's rows" });
    expect(collectorOf(await c.status(), "good").state).toBe("ok");
    // No crash loop: the actor runs, never restarted; the errors are in the node's log.
    const after = await c.status();
    expect(after.nodes[0]!.state).toBe("alive");
    expect(after.nodes[0]!.actors.find((a) => a.id === "collector-0")).toMatchObject({ state: "running", restarts: 0 });
    expect(after.nodes[0]!.actors.find((a) => a.id === "collector-0")!.gauges?.failing).toBe(3);
    const log = c.nodeOutput("n1");
    expect(log).toMatch(/error .*collection failed; retrying with backoff .*collector=no-table/);
    expect(log).toMatch(/collector=no-server .*cannot reach PostgreSQL/);
    const table_ = await c.cli(["status", "-c", c.configFile]);
    expect(table_.stdout).toMatch(/^no-table\s+postgres\s+failing\s+n1\s+.*does not exist/m);
  });
});
