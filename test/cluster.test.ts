/**
 * The cluster runtime end to end: real nats-server, real node processes, the real CLI.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterStatus, NodeStatus } from "../runtime/supervisor/status.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const node = (s: ClusterStatus, name: string): NodeStatus => s.nodes.find((n) => n.name === name)!;
const alive = (s: ClusterStatus) => s.nodes.filter((n) => n.state === "alive").map((n) => n.name);
const masters = (s: ClusterStatus) => s.nodes.filter((n) => n.role === "master" && n.state === "alive").map((n) => n.name);

describe("cluster runtime", () => {
  it("four nodes: status, fault drill, dead node, master failover, rejoin as slave, remote stop", async () => {
    // One collector configured (its source is never up: it keeps failing, its actor keeps running).
    cluster = await TestCluster.start({
      nodes: 4,
      extra: { topics: { demo: { channel: "nats" } }, collectors: [{ name: "feed", kind: "http", url: "http://127.0.0.1:9/feed", topic: "demo" }] },
    });
    const c = cluster;
    c.startAll();
    let s = await c.waitStatus(
      "4 nodes alive with n1 master",
      (st) =>
        alive(st).length === 4 &&
        st.master?.node === "n1" &&
        masters(st).length === 1 &&
        node(st, "n1").actors.length === 2 &&
        st.nodes.every((n) => n.actors.every((a) => a.state === "running")),
    );
    expect(s.master).toEqual({ node: "n1", epoch: 1 });
    expect(masters(s)).toEqual(["n1"]);
    // The collector runs only on the master; the processor on every node.
    expect(node(s, "n1").actors.map((a) => a.id).sort()).toEqual(["collector-0", "processor-0"]);
    expect(node(s, "n2").actors.map((a) => a.id)).toEqual(["processor-0"]);
    expect(node(s, "n1").actors.every((a) => a.state === "running" && a.restarts === 0)).toBe(true);

    // The CLI's JSON has the documented shape.
    const json = await c.cli(["status", "--json", "-c", c.configFile]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as ClusterStatus;
    expect(parsed.cluster).toBe("test");
    expect(parsed.queue).toEqual({ pending: 0 });
    expect(parsed.exceptions).toEqual({ retrying: 0, dead: 0 });
    for (const n of parsed.nodes) {
      expect(Object.keys(n).sort()).toEqual(
        ["actors", "heartbeatAgeMs", "isStopServer", "mainProcessIp", "name", "pid", "readMark", "role", "state"].sort(),
      );
    }
    const table = await c.cli(["status", "-c", c.configFile]);
    expect(table.stdout).toMatch(/master n1 \(epoch 1\)/);
    expect(table.stdout).toMatch(/^n3\s+alive\s+slave/m);

    // Fault drill: the actor dies and is running again, restarts incremented.
    const drill = await c.cli(["fault", "crash-actor", "--node", "n2", "--actor", "processor-0", "-c", c.configFile]);
    expect(drill.code, drill.stderr).toBe(0);
    s = await c.waitStatus("processor-0 on n2 restarted", (st) => {
      const a = node(st, "n2").actors.find((x) => x.id === "processor-0");
      return a?.restarts === 1 && a.state === "running";
    }, 5000);
    expect(c.events.some((e) => e.type === "actor.restarted" && e.node === "n2" && e.actor === "processor-0")).toBe(true);

    // SIGKILL a slave: it shows dead within timeoutMs + one interval (+ our polling slack).
    await c.kill("n3");
    const killedAt = performance.now();
    await c.waitStatus("n3 dead", (st) => node(st, "n3").state === "dead", 1000 + 200 + 1500);
    expect(performance.now() - killedAt).toBeGreaterThanOrEqual(900);

    // SIGKILL the master: exactly one other live node becomes master with a higher epoch.
    await c.kill("n1");
    s = await c.waitStatus("a new master", (st) => masters(st).length === 1 && st.master?.node !== "n1", 10_000);
    const newMaster = masters(s)[0]!;
    expect(["n2", "n4"]).toContain(newMaster);
    expect(s.master).toEqual({ node: newMaster, epoch: 2 });
    expect(node(s, "n1").state).toBe("dead");
    // The master duty (the collector) follows the lease to the new master.
    await c.waitStatus(`collector-0 running on ${newMaster}`, (st) =>
      node(st, newMaster).actors.some((a) => a.id === "collector-0" && a.state === "running"),
    );
    const acquired = c.events.filter((e) => e.type === "master.acquired");
    expect(acquired.filter((e) => e.epoch === 2).map((e) => e.node)).toEqual([newMaster]);

    // The old master comes back as a slave; the lease stays where it is.
    c.startNode("n1");
    s = await c.waitStatus("n1 back alive", (st) => node(st, "n1").state === "alive");
    // Give it a full timeout on its own clock in which it could (wrongly) take the lease.
    await waitFor(async () => (await c.status()).nodes.find((n) => n.name === "n1")!.readMark! >= 8, {
      timeoutMs: 10_000,
      what: "n1 to beat several times",
    });
    s = await c.status();
    expect(node(s, "n1").role).toBe("slave");
    expect(masters(s)).toEqual([newMaster]);
    expect(s.master).toEqual({ node: newMaster, epoch: 2 });

    // herald stop --node: drains and exits 0; status shows it stopped.
    const target = newMaster === "n2" ? "n4" : "n2";
    const stop = await c.cli(["stop", "--node", target, "-c", c.configFile]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain(`${target}: stopped`);
    expect(await c.nodes.get(target)!.exited).toEqual({ code: 0, signal: null });
    s = await c.status();
    expect(node(s, target)).toMatchObject({ state: "stopped", isStopServer: true });
  });

  it("stopping the master hands the duty over at once and exits 0", async () => {
    cluster = await TestCluster.start({ nodes: 2 });
    const c = cluster;
    c.startAll();
    await c.waitStatus("n1 master, n2 alive", (st) => alive(st).length === 2 && st.master?.node === "n1");
    const stop = await c.cli(["stop", "--node", "n1", "-c", c.configFile]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await c.nodes.get("n1")!.exited).toEqual({ code: 0, signal: null });
    const s = await c.waitStatus("n2 master", (st) => st.master?.node === "n2", 5000);
    expect(s.master?.epoch).toBe(2);
    // No collectors configured: the new master starts no collector thread for nothing.
    await waitFor(() => c.nodeOutput("n2").includes("no collectors configured: no collector thread started"), { timeoutMs: 5000, what: "n2's collector duty" });
    const after = await c.status();
    expect(node(after, "n2").actors.map((a) => a.kind)).not.toContain("collector");
    expect(node(s, "n1").state).toBe("stopped");
    expect(c.events.some((e) => e.type === "master.lost" && e.node === "n1")).toBe(true);
  });

  it("an actor that keeps crashing is marked failed once past the restart intensity", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      extra: {
        supervisor: {
          pingIntervalMs: 500,
          pingTimeoutMs: 2000,
          drainTimeoutMs: 3000,
          restart: { initialDelayMs: 0, maxDelayMs: 200, intensity: 2, periodMs: 60_000 },
        },
      },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("n1 up", (st) => node(st, "n1").actors.some((a) => a.id === "processor-0" && a.state === "running"));
    for (let i = 1; i <= 3; i++) {
      const r = await c.cli(["fault", "crash-actor", "--node", "n1", "--actor", "processor-0", "-c", c.configFile]);
      expect(r.code, r.stderr).toBe(0);
      const want = i <= 2 ? "running" : "failed";
      await c.waitStatus(`crash ${i}: processor-0 ${want}`, (st) => {
        const a = node(st, "n1").actors.find((x) => x.id === "processor-0")!;
        return a.state === want && a.restarts === Math.min(i, 2);
      }, 5000);
    }
    // A failed actor is not restarted again, and the node itself keeps running.
    const s = await c.status();
    expect(node(s, "n1").state).toBe("alive");
    expect(c.events.filter((e) => e.type === "actor.failed")).toHaveLength(1);
  });

  it("a hung actor (no answer to pings) is terminated and respawned", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      extra: { supervisor: { pingIntervalMs: 200, pingTimeoutMs: 500, drainTimeoutMs: 3000 } },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("n1 up", (st) => node(st, "n1").actors.some((a) => a.id === "processor-0" && a.state === "running"));
    const r = await c.cli(["fault", "hang-actor", "--node", "n1", "--actor", "processor-0", "-c", c.configFile]);
    expect(r.code, r.stderr).toBe(0);
    const s = await c.waitStatus("processor-0 respawned after hanging", (st) => {
      const a = node(st, "n1").actors.find((x) => x.id === "processor-0")!;
      return a.state === "running" && a.restarts === 1;
    }, 10_000);
    expect(node(s, "n1").actors.find((x) => x.id === "processor-0")!.lastError).toMatch(/no answer to ping within 500 ms/);
  });

  it("herald stop without --node stops every node, each exiting 0", async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const c = cluster;
    c.startAll();
    await c.waitStatus("3 alive", (st) => alive(st).length === 3);
    const r = await c.cli(["stop", "-c", c.configFile]);
    expect(r.code, r.stderr).toBe(0);
    for (const n of ["n1", "n2", "n3"]) {
      expect(r.stdout).toContain(`${n}: stopped`);
      expect(await c.nodes.get(n)!.exited).toEqual({ code: 0, signal: null });
    }
    const s = await c.status();
    expect(s.nodes.map((n) => n.state)).toEqual(["stopped", "stopped", "stopped"]);
  });

  it("the fault drill is refused unless the config enables fault injection", async () => {
    cluster = await TestCluster.start({ nodes: 1, faultInjection: false });
    const c = cluster;
    c.startAll();
    await c.waitStatus("n1 up", (st) => node(st, "n1").actors.some((a) => a.state === "running"));
    const r = await c.cli(["fault", "crash-actor", "--node", "n1", "--actor", "processor-0", "-c", c.configFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fault injection is disabled.*"faultInjection": true/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const s = await c.status();
    expect(node(s, "n1").actors.every((a) => a.restarts === 0)).toBe(true);
  });

  it("liveness and the lease survive a nats-server restart (watchers are recreated)", async () => {
    cluster = await TestCluster.start({ nodes: 2, intervalMs: 200, timeoutMs: 2000 });
    const c = cluster;
    c.startAll();
    await c.waitStatus("2 alive", (st) => alive(st).length === 2 && st.master?.node === "n1");
    await c.nats.server.restart();
    // Both nodes reconnect and keep beating; each sees the other alive again, and n1 kept the lease
    // or, if its lease expired during the outage, exactly one node holds it.
    const s = await c.waitStatus(
      "both alive after restart, each judging the other alive",
      (st) => alive(st).length === 2 && masters(st).length === 1,
      15_000,
    );
    const before = node(s, "n2").readMark!;
    await waitFor(async () => node(await c.status(), "n2").readMark! > before + 5, { timeoutMs: 5000, what: "n2 to keep beating" });
    // n1's view of n2 comes from its (recreated) watcher: it must still see n2's beats arrive.
    await waitFor(
      async () => {
        const view = (await c.reports()).find((r) => r.name === "n1")?.view.n2;
        return view && view.state === "alive" && view.readMark > before + 5 && view.heartbeatAgeMs < 1000;
      },
      { timeoutMs: 5000, what: "n1's watcher to see n2's new beats" },
    );
  });
});
