/**
 * A slow endpoint beside a fast one: topic `fast` pushes to a loopback webhook that answers at once,
 * topic `slow` to one that takes 2 s per request. The fast topic's rate is measured alone and then
 * with the slow topic's backlog being pushed at the same time, each on a fresh one-node cluster;
 * the ratio says how much one slow endpoint holds up the others.
 */
import { jetstream } from "@nats-io/jetstream";
import { LocalCluster, waitFor } from "../../runtime/testing/index.js";
import { EXAMPLE_ACTORS, webhookSink } from "./herald.js";
import { log, publishFullSpeed } from "./stats.js";

export interface SlowEndpointResult {
  /** Fast topic alone, msgs/s. */
  soloPerSec: number;
  /** Fast topic while the slow one is busy, msgs/s. */
  mixedPerSec: number;
  /** Slow pushes completed during the mixed run. */
  slowDelivered: number;
  slowDelayMs: number;
}

const SLOW_DELAY_MS = 2000;

async function fastRate(count: number, inflight: number, slowBacklog: number): Promise<{ perSec: number; slowDelivered: number }> {
  const fast = await webhookSink();
  const slow = await webhookSink(SLOW_DELAY_MS);
  const c = await LocalCluster.start({
    nodes: 1,
    actors: EXAMPLE_ACTORS,
    // As the example runs: no fault drills (a drill header is looked for only when they are on).
    faultInjection: false,
    extra: { topics: { fast: { channel: "webhook", url: fast.url }, slow: { channel: "webhook", url: slow.url, timeoutMs: 30_000 } } },
  });
  try {
    c.startAll();
    await c.waitStatus("nodes running", (st) => st.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")), 60_000);
    const js = jetstream(c.nc);
    if (slowBacklog > 0) {
      await publishFullSpeed(slowBacklog, inflight, (i) => js.publish("herald.in.slow", JSON.stringify({ id: `s${i}`, data: { i } })));
      // The slow topic holds its slots before the fast one starts.
      await waitFor(() => slow.seen.size > 0, { timeoutMs: 30_000, intervalMs: 20, what: "the first slow push" });
    }
    const t0 = performance.now();
    await publishFullSpeed(count, inflight, (i) => js.publish("herald.in.fast", JSON.stringify({ id: `f${i}`, data: { i } })));
    await waitFor(() => fast.seen.size >= count, { timeoutMs: 600_000, intervalMs: 20, what: "every fast message at its sink" });
    const perSec = count / ((performance.now() - t0) / 1000);
    return { perSec, slowDelivered: slow.seen.size };
  } finally {
    await c.stop();
    await fast.close();
    await slow.close();
  }
}

export async function slowEndpoint(count: number, inflight: number): Promise<SlowEndpointResult> {
  log(`  fast topic alone: ${count} messages…`);
  const solo = await fastRate(count, inflight, 0);
  log(`  fast topic beside a slow endpoint (${SLOW_DELAY_MS} ms per request, 2,000 queued): ${count} messages…`);
  const mixed = await fastRate(count, inflight, 2000);
  return { soloPerSec: solo.perSec, mixedPerSec: mixed.perSec, slowDelivered: mixed.slowDelivered, slowDelayMs: SLOW_DELAY_MS };
}
