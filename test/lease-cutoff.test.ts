/**
 * A master cut off from NATS steps down before anyone else takes over (README, "Master duty and
 * failover", item 2). The cut is a frozen TCP proxy between n1 and the nats-server: the sockets
 * stay open, so n1's requests hang until they time out, as in a real network partition.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const alive = (s: ClusterStatus) => s.nodes.filter((n) => n.state === "alive").map((n) => n.name);
const masters = (s: ClusterStatus) => s.nodes.filter((n) => n.role === "master" && n.state === "alive").map((n) => n.name);

describe("master cut off from NATS", () => {
  it("steps down before another node acquires the lease with epoch + 1", async ({ annotate }) => {
    cluster = await TestCluster.start({ nodes: 3, intervalMs: 200, timeoutMs: 1000, proxied: ["n1"] });
    const c = cluster;
    c.startAll();
    const before = await c.waitStatus(
      "3 nodes alive with n1 master",
      (st) => alive(st).length === 3 && st.master?.node === "n1" && masters(st).length === 1,
    );
    const epoch = before.master!.epoch;
    expect(c.proxy("n1").connections(), "n1's connections go through the proxy").toBeGreaterThan(0);

    // Both moments on this process's monotonic clock, taken as the bytes arrive.
    let lostAt: number | undefined;
    const n1 = c.nodes.get("n1")!;
    let stderr = "";
    n1.proc.stderr!.on("data", (d) => {
      stderr += String(d);
      if (lostAt === undefined && stderr.includes("master duty lost")) lostAt = performance.now();
    });
    const frozenAt = performance.now();
    c.proxy("n1").freeze();

    const acquired = (await waitFor(
      () => c.events.find((e) => e.type === "master.acquired" && e.node !== "n1"),
      { timeoutMs: 10_000, what: "another node to acquire the lease" },
    ))!;
    // The old code stepped down only after a stuck 5 s request: wait long enough to measure it.
    await waitFor(() => lostAt !== undefined, { timeoutMs: 10_000, what: 'n1 to log "master duty lost"' });
    const lostMs = Math.round(lostAt! - frozenAt);
    const takenMs = Math.round(acquired.receivedAt - frozenAt);
    await annotate(`n1 stepped down ${lostMs} ms after the cut; ${acquired.node} acquired after ${takenMs} ms`);
    expect(lostAt!, `n1 stepped down ${lostMs} ms after the cut, ${acquired.node} took over after ${takenMs} ms`).toBeLessThan(
      acquired.receivedAt,
    );

    await c.waitStatus(`${acquired.node} master, n1 dead`, (st) => {
      const n1State = st.nodes.find((n) => n.name === "n1")?.state;
      return st.master?.node === acquired.node && n1State === "dead";
    });
    // Exactly one successor, with the next epoch.
    const successors = c.events.filter((e) => e.type === "master.acquired" && e.epoch! > epoch);
    expect(successors.map((e) => [e.node, e.epoch])).toEqual([[acquired.node, epoch + 1]]);
  });
});
