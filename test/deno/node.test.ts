/**
 * A node under Deno 2: actors on Web Workers (no exit event: death found by the error event or
 * ping), the v3 NATS client, comlink. It must heartbeat, report status and respawn a crashed actor.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../runtime/supervisor/status.js";
import { TestCluster } from "../helpers/cluster.js";
import { waitFor } from "../helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const d1 = (s: ClusterStatus) => s.nodes.find((n) => n.name === "n1")!;

describe("node under Deno", () => {
  it("heartbeats, reports status, respawns a crashed actor and stops cleanly", async () => {
    cluster = await TestCluster.start({ nodes: 1, runtime: "deno" });
    const c = cluster;
    const proc = c.startNode("n1");
    let s = await c.waitStatus("n1 alive and master under Deno", (st) =>
      d1(st).state === "alive" && st.master?.node === "n1" && d1(st).actors.every((a) => a.state === "running") && d1(st).actors.length === 1,
    );
    const mark = d1(s).readMark!;
    await waitFor(async () => d1(await c.status()).readMark! >= mark + 3, { timeoutMs: 5000, what: "readMark to advance" });

    // Its answer comes from the Deno process itself.
    const report = (await c.reports()).find((r) => r.name === "n1")!;
    expect(report.pid).toBe(proc.proc.pid);

    const drill = await c.cli(["fault", "crash-actor", "--node", "n1", "--actor", "processor-0", "-c", c.configFile]);
    expect(drill.code, drill.stderr).toBe(0);
    s = await c.waitStatus("processor-0 respawned under Deno", (st) => {
      const a = d1(st).actors.find((x) => x.id === "processor-0");
      return a?.state === "running" && a.restarts === 1;
    }, 5000);
    expect(d1(s).state).toBe("alive");

    const stop = await c.cli(["stop", "--node", "n1", "-c", c.configFile]);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await proc.exited).code).toBe(0);
  });
});
