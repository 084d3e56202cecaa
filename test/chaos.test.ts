/**
 * Bounded chaos (the CI cut of `npm run chaos`): three nodes under a steady load while an actor
 * thread crashes, a node is SIGKILLed and restarted, and nats-server restarts. Every id JetStream
 * acknowledged must reach the sink; duplicates are allowed (at-least-once) and reported.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  CHAOS_IN,
  CHAOS_OUT,
  countsLine,
  FaultInjector,
  RatePublisher,
  Sink,
  startChaosCluster,
  tally,
  type FaultKind,
} from "../bench/chaos/index.js";
import { seededRandom } from "../runtime/rules/random.js";
import type { LocalCluster } from "../runtime/testing/index.js";
import { waitFor } from "./helpers/nats.js";

let cluster: LocalCluster | undefined;
let sink: Sink | undefined;
let pub: RatePublisher | undefined;
let injector: FaultInjector | undefined;

afterEach(async () => {
  await pub?.stop().catch(() => undefined);
  await injector?.close();
  await sink?.stop();
  await cluster?.stop();
  cluster = sink = pub = injector = undefined;
});

const LOAD_MS = 15_000;
const RATE = 400;
/** When each fault starts, ms into the load: the schedule, not synchronisation. */
const SCHEDULE: [number, FaultKind][] = [
  [1500, "crash-actor"],
  [4000, "kill-node"],
  [10_000, "restart-nats"],
];

const until = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));

describe("chaos", () => {
  it("an actor crash, a node SIGKILL + restart and a nats-server restart under load lose no acknowledged message", async () => {
    cluster = await startChaosCluster(3);
    sink = await Sink.start(cluster.nats.url, CHAOS_OUT);
    injector = await FaultInjector.start(cluster, { random: seededRandom(5), downMs: [1500, 1500], recoverTimeoutMs: 20_000 });
    pub = await RatePublisher.start({ servers: cluster.nats.url, subject: CHAOS_IN, rate: RATE, idPrefix: "ci" });
    const t0 = performance.now();
    for (const [at, kind] of SCHEDULE) {
      await until(t0 + at);
      const f = await injector.inject(kind);
      // Each fault happened and the cluster came back whole (every node alive, every actor running).
      expect(f.ok, `${f.kind} ${f.target}: ${f.detail}`).toBe(true);
    }
    await until(t0 + LOAD_MS);
    await pub.stop();

    const s = sink;
    const acked = pub.acked;
    await waitFor(() => acked.every((id) => s.has(id)), { timeoutMs: 45_000, intervalMs: 200, what: "every acked id at the sink" }).catch(() => undefined);
    const t = tally(pub, sink);
    console.log(`chaos: ${injector.log.map((f) => `${f.kind} ${f.target}: ${f.detail}`).join(" | ")}`);
    console.log(`chaos: ${countsLine(t)} not_acked=${t.notAcked}`);
    expect(t.lostSample, "acked ids never delivered").toEqual([]);
    expect(t.lost).toBe(0);
    // The load really ran through the faults: almost every publish was acked and delivered.
    expect(t.published).toBeGreaterThan(0.9 * RATE * (LOAD_MS / 1000));
    expect(t.acked).toBeGreaterThan(0.8 * t.published);
    const drained = await cluster.waitStatus("queue drained", (st) => st.queue.pending === 0 && st.exceptions.retrying === 0, 30_000);
    expect(drained.exceptions.dead).toBe(0);
  }, 120_000);
});
