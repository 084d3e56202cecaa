/**
 * Collector failover end to end: rows are inserted continuously while the master is SIGKILLed, or
 * paused (SIGSTOP) and resumed after a slave took over. Every row arrives exactly once at the sink,
 * and the paused ex-master never moves the checkpoint after its successor did (fencing).
 *
 * Every node runs a collector actor (whichever slave wins the lease collects); only n3 runs the
 * pipeline, and n1 (the preset master) is the one killed or paused, so no message in flight in the
 * pipeline is lost or redelivered: what is measured is the collectors' failover alone.
 */
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { bindBucket } from "../runtime/nats/buckets.js";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { countsBy, PG_URL, sharedPostgres, sink, tempSchema, type Pushed } from "./collector-helpers.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let pool: pg.Pool;
const postgres = sharedPostgres();
let cluster: TestCluster | undefined;
let schema: { name: string; drop(): Promise<void> } | undefined;
let inserter: Inserter | undefined;

afterEach(async () => {
  await inserter?.stop();
  await cluster?.stop();
  await schema?.drop();
  inserter = undefined;
  cluster = undefined;
  schema = undefined;
});

const INTERVAL_MS = 100;
const none = { ingest: 0, collector: 0, subqueue: 0, processor: 0, pusher: 0 };

/** Inserts a row every few ms on one connection (so commit order is timestamp order) until stopped. */
class Inserter {
  readonly ids: number[] = [];
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(table: string) {
    this.done = (async () => {
      for (let id = 1; !this.stopped; id++) {
        await pool.query(`INSERT INTO ${table} (id, body) VALUES ($1, 'row')`, [id]);
        this.ids.push(id);
        // Pacing, not synchronisation: a steady stream of rows.
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function startCluster(): Promise<{ c: TestCluster; out: Pushed[]; table: string }> {
  schema = await tempSchema(pool);
  const table = `${schema.name}.events`;
  await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY, body text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  cluster = await TestCluster.start({
    nodes: 3,
    nodeExtra: (i) => ({ actors: i < 2 ? { ...none, collector: 1 } : { ...none, collector: 1, subqueue: 1, processor: 1, pusher: 1 } }),
    extra: {
      pipeline: { duplicateWindowMs: 600_000 },
      topics: { events: { channel: "nats" } },
      collectors: [
        { name: "events", kind: "postgres", connectionString: PG_URL, table, keyColumn: "id", updatedAtColumn: "updated_at", topic: "events", intervalMs: INTERVAL_MS, batchSize: 20 },
      ],
    },
  });
  const out = sink(cluster.nc, "herald.out.events");
  await cluster.nc.flush();
  cluster.startAll();
  await cluster.waitStatus(
    "n1 master collecting, n3 running the pipeline",
    (s) =>
      s.master?.node === "n1" &&
      s.nodes.every((n) => n.state === "alive") &&
      collecting(s, "n1") &&
      s.nodes[2]!.actors.length === 3 &&
      s.nodes[2]!.actors.every((a) => a.state === "running"),
    30_000,
  ).catch(async (err) => {
    // A cluster that never came up: say whether NATS was still there, and what the nodes logged.
    const server = await Promise.race([cluster!.nats.server.exited.then((code) => `exited with ${code}`), new Promise((r) => setTimeout(() => r("running"), 100))]);
    console.error(`startup failed; nats-server ${server}; test connection ${cluster!.nc.isClosed() ? "closed" : "open"}`);
    for (const n of ["n1", "n2", "n3"]) console.error(`--- ${n} (last lines)\n${cluster!.nodeOutput(n).slice(-2500)}`);
    throw err;
  });
  return { c: cluster, out, table };
}

/** The master other than n1 once its collector reports, else undefined. */
const newMaster = (s: ClusterStatus) => {
  const m = s.master?.node;
  return m && m !== "n1" && collecting(s, m) ? m : undefined;
};

const collecting = (s: ClusterStatus, node: string) => {
  const col = s.collectors.find((x) => x.name === "events");
  return col?.node === node && col.state === "ok" && s.nodes.find((n) => n.name === node)!.actors.some((a) => a.id === "collector-0" && a.state === "running");
};

/** Every inserted row arrived exactly once. */
async function expectExactlyOnce(out: Pushed[], ids: number[]): Promise<void> {
  await waitFor(() => new Set(out.map((p) => p.json.data.id)).size >= ids.length, { timeoutMs: 15_000, what: `all ${ids.length} rows at the sink` });
  // Anything late (a duplicate still in the pipeline) would show up within a few intervals.
  const settledAt = performance.now();
  await waitFor(() => performance.now() - settledAt > 5 * INTERVAL_MS, { timeoutMs: 5000, what: "a quiet period" });
  const counts = countsBy(out, "id");
  expect(ids.filter((id) => counts.get(String(id)) !== 1), "rows not arriving exactly once").toEqual([]);
  expect(counts.size).toBe(ids.length);
}

/** The longest pause between consecutive arrivals in [from, to], ms. */
function longestGap(out: Pushed[], from: number, to: number): number {
  const times = out.map((p) => p.at).filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

describe("collector failover", () => {
  it("SIGKILL the master while rows are inserted: a slave resumes from the checkpoint, every row arrives exactly once", async () => {
    pool = await postgres();
    const { c, out, table } = await startCluster();
    inserter = new Inserter(table);
    await waitFor(() => out.length >= 50, { timeoutMs: 10_000, what: "50 rows collected by n1" });
    const killedAt = performance.now();
    await c.kill("n1");
    // The lease goes to the live nodes in config order on a best-effort basis (each judges on its own
    // clock), so either slave may win; the winner's collector takes over.
    const s = await c.waitStatus("a new master collecting", (st) => newMaster(st) !== undefined, 15_000);
    const successor = newMaster(s)!;
    expect(s.master?.epoch).toBe(2);
    const resumedAt = performance.now();
    const atResume = out.length;
    await waitFor(() => out.length >= atResume + 50, { timeoutMs: 10_000, what: `50 rows collected by ${successor}` });
    await inserter.stop();
    await expectExactlyOnce(out, inserter.ids);
    const gap = longestGap(out, killedAt - 1000, performance.now());
    const col = (await c.status()).collectors[0]!;
    console.log(
      `[collector failover] ${inserter.ids.length} rows; ${successor} collecting ${Math.round(resumedAt - killedAt)} ms after SIGKILL (seen by status polling); ` +
        `longest gap between arrivals ${Math.round(gap)} ms; duplicates dropped by the queue ${col.duplicates}`,
    );
    expect(col).toMatchObject({ node: successor, epoch: 2, state: "ok" });
    expect(col.collected).toBe(inserter.ids.length);
    // Heartbeat timeout 1 s, interval 200 ms: the gap is the takeover plus one T.
    expect(gap).toBeLessThan(5000);
  });

  it("a paused master (SIGSTOP) that wakes after a slave took over cannot move the checkpoint; rows arrive exactly once", async () => {
    pool = await postgres();
    const { c, out, table } = await startCluster();
    const kv = await bindBucket(c.nc, "herald_collectors");
    // Every write of the checkpoint, in revision order, from before the pause to the end.
    const writes: { epoch: number; node: string; revision: number }[] = [];
    const watch = await kv.watch({ key: "checkpoint.events" });
    void (async () => {
      for await (const e of watch) if (e.operation === "PUT") writes.push({ ...e.json<{ epoch: number; node: string }>(), revision: e.revision });
    })();
    inserter = new Inserter(table);
    await waitFor(() => out.length >= 50, { timeoutMs: 10_000, what: "50 rows collected by n1" });
    const n1 = c.nodes.get("n1")!.proc;
    n1.kill("SIGSTOP");
    let successor: string;
    try {
      successor = newMaster(await c.waitStatus("a new master collecting", (st) => newMaster(st) !== undefined, 15_000))!;
      const atTakeover = out.length;
      await waitFor(() => out.length >= atTakeover + 30 && writes.filter((w) => w.epoch === 2).length >= 3, {
        timeoutMs: 10_000,
        what: `${successor} collecting and checkpointing`,
      });
    } finally {
      n1.kill("SIGCONT");
    }
    // The woken ex-master finds its lease gone and stops its collector; the successor stays master.
    await c.waitStatus("n1 back as a slave without collectors", (st) => {
      const node = st.nodes.find((n) => n.name === "n1")!;
      return node.state === "alive" && node.role === "slave" && node.actors.length === 0;
    }, 15_000);
    const atWake = out.length;
    await waitFor(() => out.length >= atWake + 30, { timeoutMs: 10_000, what: "30 more rows after n1 woke" });
    await inserter.stop();
    await expectExactlyOnce(out, inserter.ids);
    watch.stop();
    // Fencing: once epoch 2 wrote the checkpoint, no epoch-1 write ever landed after it.
    const firstOfTwo = writes.findIndex((w) => w.epoch === 2);
    expect(firstOfTwo).toBeGreaterThan(0);
    expect(writes.slice(firstOfTwo).filter((w) => w.epoch !== 2)).toEqual([]);
    expect(writes.slice(firstOfTwo).every((w) => w.node === successor)).toBe(true);
    const s = await c.status();
    expect(s.master).toEqual({ node: successor, epoch: 2 });
    expect(s.collectors[0]).toMatchObject({ node: successor, epoch: 2, state: "ok" });
    expect(c.nodeOutput("n1")).toMatch(/master duty lost/);
    const fenced = /collector fenced|checkpoint moved by another writer/.test(c.nodeOutput("n1"));
    console.log(`[collector pause] ${inserter.ids.length} rows; ${writes.length} checkpoint writes; ex-master's collector ${fenced ? "was fenced / lost its CAS" : "was stopped before it tried to write"}`);
  });
});
