/**
 * Idle latency: one message at a time on the four-node example shape under the default rules,
 * from JetStream's stored time (`createdAt`) to arrival at a `nats` channel subscriber; the next
 * message is published once the previous one has arrived.
 */
import { jetstream } from "@nats-io/jetstream";
import { LocalCluster, waitFor } from "../../runtime/testing/index.js";
import { EXAMPLE_ACTORS, EXAMPLE_TEMPLATE } from "./herald.js";
import { spread, type Spread } from "./stats.js";

export async function idleLatency(messages: number): Promise<Spread> {
  const c = await LocalCluster.start({
    nodes: 4,
    actors: EXAMPLE_ACTORS,
    // As the example runs: no fault drills (a drill header is looked for only when they are on).
    faultInjection: false,
    extra: { topics: { demo: { channel: "nats", template: EXAMPLE_TEMPLATE } } },
  });
  const arrived = new Map<string, number>();
  try {
    c.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        const push = m.json<{ id: string; createdAt: number }>();
        arrived.set(push.id, Date.now() - push.createdAt);
      },
    });
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("nodes running", (st) => st.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")), 60_000);
    const js = jetstream(c.nc);
    // A few to warm every path (connections, JIT) before measuring.
    const samples: number[] = [];
    for (let i = -10; i < messages; i++) {
      const id = `idle-${i}`;
      await js.publish("herald.in.demo", JSON.stringify({ id, data: { name: "Ada" } }));
      await waitFor(() => arrived.has(id), { timeoutMs: 10_000, intervalMs: 1, what: `idle message ${id}` });
      if (i >= 0) samples.push(arrived.get(id)!);
    }
    return spread(samples);
  } finally {
    await c.stop();
  }
}
