/**
 * Chaos drills: a cluster under steady load while faults are injected, and the count of what came
 * out. Shared by `bench/chaos.ts` (the long run) and `test/chaos.test.ts` (the bounded one).
 */
import { HostCluster, LocalCluster } from "../../runtime/testing/index.js";
import type { RatePublisher } from "./publisher.js";
import type { Sink } from "./sink.js";
import { whole, type FlowProbe } from "./faults.js";

export { FAULT_KINDS, FaultInjector, faultKindsFor, runSchedule, whole } from "./faults.js";
export type { FaultInjectorOptions, FaultKind, FaultRecord, FlowProbe, ScheduleOptions } from "./faults.js";
export { RatePublisher } from "./publisher.js";
export type { PublisherOptions } from "./publisher.js";
export { Sink } from "./sink.js";

/** Subjects of the chaos topic. */
export const CHAOS_IN = "herald.in.demo";
export const CHAOS_OUT = "herald.out.demo";

/**
 * Every chaos node: one actor of each kind but collector, the demo topic, forgiving retries.
 *
 * The demo topic pushes with `jetstream: true`, to the sink's capture stream: a core publish made
 * where the sink's connections cannot hear it (a server cut off from them, or one just restarted,
 * before the capture stream and the sink's subscription are back) reaches nobody and still counts
 * as delivered (all core NATS promises), so only a stored push tells Herald's loss from the
 * network's.
 */
const CHAOS_NODES = {
  faultInjection: true,
  actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
  extra: {
    topics: { demo: { channel: "nats", jetstream: true } },
    pipeline: { ackWaitMs: 3000, duplicateWindowMs: 600_000, retry: { backoffMs: [200, 500, 1000], maxAttempts: 1000 } },
  },
} as const;

/**
 * A running cluster of `nodes` nodes, each with one ingest, sub-queue, processor and pusher, and
 * the `demo` topic on the nats channel. Short AckWait so a killed holder's messages come back
 * soon; retries practically unbounded so a long outage delays messages instead of killing them.
 */
export async function startChaosCluster(nodes: number, opts: { natsServers?: number } = {}): Promise<LocalCluster> {
  const servers = opts.natsServers ?? 1;
  const cluster = await LocalCluster.start({
    nodes,
    ...CHAOS_NODES,
    ...(servers > 1 ? { natsCluster: { size: servers, replicas: servers >= 5 ? 5 : 3 } } : {}),
  });
  try {
    cluster.startAll();
    await cluster.waitStatus(`${nodes} nodes running`, (s) => s.nodes.length === nodes && whole(s), 60_000);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/**
 * The chaos cluster on three hosts (runtime/testing/hosts.ts): one nats-server and one node per
 * network namespace, R3. Needs root and `ip netns` (see canUseNetns).
 */
export async function startHostChaosCluster(): Promise<HostCluster> {
  const hosts = await HostCluster.start(CHAOS_NODES);
  try {
    hosts.startNodes();
    await hosts.cluster.waitStatus("3 nodes on 3 hosts running", (s) => s.nodes.length === 3 && whole(s), 90_000);
    return hosts;
  } catch (err) {
    await hosts.stop();
    throw err;
  }
}

/**
 * Deliveries caught up: every message acked since the mark has been delivered, but for those of
 * the last quarter second (normal latency), and at least one such message was. A first message
 * through is not enough: after a cut, a few trickle in long before the backlog moves.
 */
export function flowProbe(pub: RatePublisher, sink: Sink, rate: number): FlowProbe {
  const slack = Math.max(1, Math.ceil(rate / 4));
  return {
    lastRefusedSince: (since) => pub.lastFailedSince(since),
    mark: () => pub.acked.length,
    resumed: (mark) => {
      const end = pub.acked.length - slack;
      if (end <= mark) return false;
      for (let i = mark; i < end; i++) if (!sink.has(pub.acked[i]!)) return false;
      return true;
    },
  };
}

export interface Tally {
  published: number;
  acked: number;
  /** Publishes that failed (not owed delivery). */
  notAcked: number;
  deliveredUnique: number;
  duplicates: number;
  /** Acked ids never delivered. */
  lost: number;
  /** A few of the lost ids, to look up. */
  lostSample: string[];
}

export function tally(pub: RatePublisher, sink: Sink): Tally {
  const lostIds = pub.acked.filter((id) => !sink.has(id));
  return {
    published: pub.published,
    acked: pub.acked.length,
    notAcked: pub.failed,
    deliveredUnique: sink.unique(),
    duplicates: sink.duplicates(),
    lost: lostIds.length,
    lostSample: lostIds.slice(0, 10),
  };
}

/** The run's last line, in the one format scripts grep for. */
export function countsLine(t: Tally): string {
  return `published=${t.published} acked=${t.acked} delivered_unique=${t.deliveredUnique} duplicates=${t.duplicates} lost=${t.lost}`;
}
