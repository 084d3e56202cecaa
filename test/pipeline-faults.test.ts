/**
 * Nothing acknowledged is lost: messages are in flight while a processing node is SIGKILLed and a
 * pusher thread is crashed; every id JetStream acknowledged at ingest must reach the sink.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const processing = { ingest: 0, collector: 0, subqueue: 1, processor: 1, pusher: 1 };

describe("pipeline under faults", () => {
  it("SIGKILL of a processing node and a crashed pusher lose no acknowledged message", async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      // n1 only ingests; n2 and n3 share the processing.
      nodeExtra: (i) => ({ actors: i === 0 ? { ingest: 1, collector: 0, subqueue: 0, processor: 0, pusher: 0 } : processing }),
      extra: {
        pipeline: { ackWaitMs: 2000, retry: { backoffMs: [200, 500], maxAttempts: 20 } },
        topics: { demo: { channel: "nats" } },
      },
    });
    const c = cluster;
    const seen = new Map<string, number>();
    c.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        const id = (m.json() as { id: string }).id;
        seen.set(id, (seen.get(id) ?? 0) + 1);
      },
    });
    await c.nc.flush();
    c.startAll();
    const running = (s: ClusterStatus) => s.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running"));
    await c.waitStatus("3 nodes running", running, 30_000);

    const js = jetstream(c.nc);
    const total = 3000;
    const acked: string[] = [];
    const publishing = (async () => {
      for (let i = 0; i < total; i += 100) {
        const batch = Array.from({ length: Math.min(100, total - i) }, (_, k) => `m-${i + k}`);
        const acks = await Promise.all(batch.map((id) => js.publish("herald.in.demo", JSON.stringify({ id, data: { i } }))));
        acks.forEach((a, k) => {
          if (!a.duplicate) acked.push(batch[k]!);
        });
      }
    })();

    await waitFor(() => seen.size >= 300, { timeoutMs: 20_000, what: "deliveries to start" });
    await c.kill("n2");
    await waitFor(() => seen.size >= 1200, { timeoutMs: 30_000, what: "n3 to carry on alone" });
    const drill = await c.cli(["fault", "crash-actor", "--node", "n3", "--actor", "pusher-0", "-c", c.configFile]);
    expect(drill.code, drill.stderr).toBe(0);
    await publishing;
    expect(acked).toHaveLength(total);

    await waitFor(() => acked.every((id) => seen.has(id)), { timeoutMs: 60_000, intervalMs: 200, what: "every acked id at the sink" });
    const lost = acked.filter((id) => !seen.has(id)).length;
    const duplicates = [...seen.values()].reduce((n, k) => n + (k - 1), 0);
    console.log(`faults: published=${total} acked=${acked.length} delivered_unique=${seen.size} duplicates=${duplicates} lost=${lost}`);
    expect(lost).toBe(0);
    const s = await c.waitStatus("queue drained", (st) => st.queue.pending === 0 && st.exceptions.retrying === 0, 30_000);
    expect(s.exceptions.dead).toBe(0);
    const pusher = s.nodes.find((n) => n.name === "n3")!.actors.find((a) => a.id === "pusher-0")!;
    expect(pusher.restarts).toBe(1);
  });
});
