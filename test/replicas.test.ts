/**
 * `nats.replicas` on a real three-server JetStream cluster: every stream and bucket Herald creates
 * has that many replicas, messages keep flowing when one server is SIGKILLed, and an existing
 * stream with another replica count is reported, not silently used.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const HERALD_STREAMS = ["HERALD_QUEUE", "HERALD_EXCEPTIONS", "HERALD_DLQ", "KV_herald_registry", "KV_herald_rules", "KV_herald_poison"];

describe("replicas", () => {
  it("nats.replicas 3: every stream and bucket is R3, and pushes go on with one of three servers SIGKILLed", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      natsCluster: { size: 3, replicas: 3 },
      extra: { topics: { demo: { channel: "nats" } } },
    });
    const c = cluster;
    const out = new Set<string>();
    c.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        out.add(m.json<{ id: string }>().id);
      },
    });
    c.startAll();
    await c.waitStatus("the node running", allRunning, 60_000);
    const jsm = await jetstreamManager(c.nc);
    for (const name of HERALD_STREAMS) {
      const info = await jsm.streams.info(name);
      expect([name, info.config.num_replicas]).toEqual([name, 3]);
      expect(info.cluster?.replicas?.length, name).toBe(2);
    }
    const js = jetstream(c.nc, { timeout: 10_000 });
    await js.publish("herald.in.demo", JSON.stringify({ id: "before", data: {} }));
    await waitFor(() => out.has("before"), { timeoutMs: 10_000, what: "a push before the kill" });

    // The client's own server may be the one killed: it reconnects to another.
    const victim = c.nats.server;
    await victim.kill();
    for (let i = 0; i < 20; i++) {
      await waitFor(() => js.publish("herald.in.demo", JSON.stringify({ id: `after-${i}`, data: {} })), { timeoutMs: 20_000, what: `publish after-${i}` });
    }
    await waitFor(() => Array.from({ length: 20 }, (_, i) => `after-${i}`).every((id) => out.has(id)), {
      timeoutMs: 30_000,
      what: "every message published with a server down",
    });
  });

  it("three nodes started at once on a fresh R3 cluster all come up and stay up", async () => {
    // Regression: every node creates the R3 buckets and streams at once and writes its first
    // heartbeat while their stream leaders are still being elected; that write failed with "no
    // responders" and the node died.
    cluster = await TestCluster.start({
      nodes: 3,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      natsCluster: { size: 3, replicas: 3 },
      extra: { topics: { demo: { channel: "nats" } } },
    });
    const c = cluster;
    const procs = c.startAll();
    await c.waitStatus("three nodes running", (s) => s.nodes.length === 3 && allRunning(s), 60_000);
    expect(procs.map((p) => [p.name, p.proc.exitCode, p.proc.signalCode])).toEqual(procs.map((p) => [p.name, null, null]));
  });

  it("an existing stream with another replica count is kept and reported at start", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 0, collector: 0, subqueue: 1, processor: 0, pusher: 0 },
      natsCluster: { size: 3, replicas: 3 },
      extra: { topics: { demo: { channel: "nats" } } },
    });
    const c = cluster;
    // Someone created the queue with one replica before Herald first started.
    await (await jetstreamManager(c.nc)).streams.add({ name: "HERALD_QUEUE", subjects: ["herald.in.>"], retention: "workqueue" as never, num_replicas: 1 });
    c.startAll();
    await c.waitStatus("the node running", allRunning, 60_000);
    expect(c.nodeOutput("n1")).toContain(
      "stream HERALD_QUEUE has 1 replica but nats.replicas is 3: it is kept as it is; scale it with `nats stream edit HERALD_QUEUE --replicas 3` or set nats.replicas to 1",
    );
    expect((await (await jetstreamManager(c.nc)).streams.info("HERALD_QUEUE")).config.num_replicas).toBe(1);
  });
});
