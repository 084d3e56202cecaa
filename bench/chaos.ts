/**
 * The chaos run: a 4-node cluster under a steady offered load while every kind of fault is
 * injected at random (seeded) times — an actor thread crashed, a node SIGKILLed and restarted,
 * the master SIGKILLed and restarted, nats-server restarted; each kind at least once, and each
 * under load (the load outlasts --duration if a slow recovery pushes the last fault past it).
 * Then the load stops, the run waits for the pipeline to drain, and counts: every id JetStream
 * acknowledged must have been pushed. Publish failures (say, during the broker restart) are not
 * retried and not owed. The sink is a JetStream stream capturing herald.out.demo plus a core
 * subscriber (see chaos/sink.ts).
 *
 *   npm run chaos [-- --duration 120 --rate 1500 --seed 42 --nodes 4]
 *   npm run chaos -- --quick        (25 s at 800 msg/s, one fault of each kind; under a minute)
 *   npm run chaos -- --nats 3       (a three-server JetStream cluster, R3; adds kill-nats)
 *   npm run chaos -- --hosts        (three hosts as network namespaces, one nats-server and one
 *                                    node each, R3; adds kill-nats, cut-host, kill-master-host;
 *                                    needs root and `ip netns`, see runtime/testing/netns.ts)
 *
 * The last line is always `published=N acked=N delivered_unique=N duplicates=N lost=N`. Exit code
 * 1 when an acked message was lost, the queue did not drain, or the cluster did not recover.
 */
import { parseArgs } from "node:util";
import { Progress } from "../runtime/cli/progress.js";
import { parseCommandLine } from "./lib/args.js";
import { seededRandom } from "../runtime/rules/random.js";
import { canUseNetns, HOSTS_CLIENT, waitFor, type HostCluster, type LocalCluster } from "../runtime/testing/index.js";
import {
  CHAOS_IN,
  CHAOS_OUT,
  countsLine,
  FaultInjector,
  faultKindsFor,
  flowProbe,
  RatePublisher,
  runSchedule,
  Sink,
  startChaosCluster,
  startHostChaosCluster,
  tally,
  type FaultRecord,
} from "./chaos/index.js";

const USAGE = `usage: npm run chaos [-- OPTIONS]

  --quick        25 s at 800 msg/s, one fault of each kind (under a minute)
  --duration S   seconds of load (default 120)
  --rate N       messages per second offered (default 1500)
  --seed N       the fault schedule's seed (default: random, printed)
  --nodes N      Herald nodes (default 4)
  --nats N       nats-servers: 1, or 3 for a JetStream cluster (R3) that adds kill-nats
  --hosts        three hosts as network namespaces (root and ip netns), one server and node each
`;
const { values } = parseCommandLine("herald chaos", USAGE, () => parseArgs({ options: {
  quick: { type: "boolean", default: false },
  duration: { type: "string" },
  rate: { type: "string" },
  seed: { type: "string" },
  nodes: { type: "string", default: "4" },
  nats: { type: "string", default: "1" },
  hosts: { type: "boolean", default: false },
} }));
const quick = values.quick;
const durationS = Number(values.duration ?? (quick ? 25 : 120));
const rate = Number(values.rate ?? (quick ? 800 : 1500));
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const onHosts = values.hosts;
/** On hosts: one node and one server per host, three hosts. */
const nodes = onHosts ? 3 : Number(values.nodes);
const natsServers = onHosts ? 3 : Number(values.nats);
/** After the load ends, how long acked messages may take to arrive, ms. */
const SETTLE_MS = 120_000;

/** The running counts, in place on a terminal; nothing when piped (the report says it all). */
const status = new Progress();

function line(text: string): void {
  status.done();
  process.stdout.write(`${text}\n`);
}

function describe(f: FaultRecord): string {
  return `  +${(f.atMs / 1000).toFixed(1).padStart(6)} s  ${f.kind.padEnd(12)} ${f.target.padEnd(14)} ${f.ok ? "" : "FAILED: "}${f.detail}`;
}

async function main(): Promise<number> {
  for (const [name, v] of Object.entries({ duration: durationS, rate, seed, nodes })) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  }
  if (onHosts) {
    const reason = await canUseNetns();
    if (reason !== undefined) {
      line(`chaos --hosts: cannot run here: ${reason}`);
      return 2;
    }
  }
  const where = onHosts ? " on 3 hosts (network namespaces), R3" : natsServers > 1 ? `, ${natsServers} nats-servers` : "";
  line(`chaos: ${nodes} nodes${where}, ${rate} msg/s for ${durationS} s, seed ${seed}${quick ? " (quick)" : ""}`);
  const random = seededRandom(seed);
  let hosts: HostCluster | undefined;
  let cluster: LocalCluster;
  if (onHosts) {
    hosts = await startHostChaosCluster();
    cluster = hosts.cluster;
  } else {
    cluster = await startChaosCluster(nodes, { natsServers });
  }
  const kinds = faultKindsFor({ servers: cluster.nats.servers.length, hosts: onHosts });
  const connection = onHosts ? HOSTS_CLIENT : {};
  let sink: Sink | undefined;
  let pub: RatePublisher | undefined;
  let injector: FaultInjector | undefined;
  try {
    sink = await Sink.start(cluster.nats.url, CHAOS_OUT, { replicas: natsServers > 1 ? 3 : 1, connection });
    pub = await RatePublisher.start({ servers: cluster.nats.url, subject: CHAOS_IN, rate, idPrefix: `chaos${seed}`, connection });
    injector = await FaultInjector.start(cluster, {
      random,
      downMs: quick ? [2000, 3000] : [2000, 6000],
      onFault: (f) => line(`fault: ${describe(f).trim()}`),
      ...(hosts ? { hosts, recoverTimeoutMs: 60_000 } : {}),
      flow: flowProbe(pub, sink, rate),
      connection,
    });
    const t0 = performance.now();
    const endAt = t0 + durationS * 1000;
    const p = pub;
    const s = sink;
    const progress = setInterval(() => {
      const t = Math.round((performance.now() - t0) / 1000);
      status.update(`[${String(t).padStart(4)} s] published=${p.published} acked=${p.acked.length} not_acked=${p.failed} in_flight=${p.inFlight} delivered=${s.unique()} duplicates=${s.duplicates()}`, true);
    }, 1000);
    // Quick: exactly one of each kind, close together. Full: one of each plus random extras, ~every 8–16 s.
    const faults = runSchedule(injector, {
      random,
      gapMs: quick ? [500, 1500] : [4000, 12_000],
      extra: quick ? 0 : Math.max(0, Math.floor(durationS / 12) - kinds.length),
      kinds,
      endAt: endAt - (quick ? 2000 : 10_000),
    });
    let faultsOver = false;
    void faults.then(() => (faultsOver = true));
    await new Promise((r) => setTimeout(r, Math.max(0, endAt - performance.now())));
    if (!faultsOver) {
      // Every fault is injected under load (a slow recovery can push the last one past the end).
      line("faults still running: the load goes on until they are over");
      await faults;
      await new Promise((r) => setTimeout(r, 2000));
    }
    await pub.stop();
    line(`load stopped after ${((performance.now() - t0) / 1000).toFixed(1)} s; waiting for the drain`);
    const log = await faults;
    const acked = pub.acked;
    const arrived = await waitFor(() => acked.every((id) => s.has(id)), { timeoutMs: SETTLE_MS, intervalMs: 500, what: "every acked id at the sink" }).catch(
      (err: Error) => (line(err.message), false),
    );
    const drained = await cluster
      .waitStatus("the queue and the exception queue empty", (st) => st.queue.pending === 0 && st.exceptions.retrying === 0, arrived ? 60_000 : 5000)
      .catch((err: Error) => (line(err.message), undefined));
    clearInterval(progress);

    const t = tally(pub, sink);
    line("fault log:");
    for (const f of log) line(describe(f));
    const failures = [...pub.failures].map(([why, n]) => `${n}× ${why}`).join("; ");
    line(`not acked (publish failed, not owed): ${t.notAcked}${failures ? ` — ${failures}` : ""}`);
    line(`delivered although not acked: ${t.deliveredUnique - (t.acked - t.lost)}; missed by the core subscriber while reconnecting (caught by the capture stream): ${sink.missedLive()}`);
    line(`queue: ${drained ? `drained (pending 0, retrying 0, dead ${drained.exceptions.dead})` : "NOT drained"}`);
    if (t.lost > 0) line(`LOST acked ids (first ${t.lostSample.length}): ${t.lostSample.join(" ")}`);
    const deliveries = t.deliveredUnique + t.duplicates;
    for (const kind of kinds) {
      const of = log.filter((f) => f.kind === kind);
      const stat = (pick: (f: FaultRecord) => number | undefined) => {
        const xs = of.map(pick).filter((x): x is number => x !== undefined);
        return xs.length === 0 ? "-" : xs.length === 1 ? String(xs[0]) : `${Math.min(...xs)}..${Math.max(...xs)}`;
      };
      line(
        `fault ${kind}: n=${of.length} ok=${of.filter((f) => f.ok).length} failover_ms=${stat((f) => f.failoverMs)} ` +
          `deliveries_caught_up_ms=${stat((f) => f.flowMs)} whole_after_restart_ms=${stat((f) => f.recoverMs)}`,
      );
    }
    line(`duplicate rate: ${((100 * t.duplicates) / Math.max(1, deliveries)).toFixed(3)}% (${t.duplicates} of ${deliveries} deliveries)`);
    const ok = t.lost === 0 && drained !== undefined && log.every((f) => f.ok);
    line(countsLine(t));
    return ok ? 0 : 1;
  } finally {
    await pub?.stop().catch(() => undefined);
    await injector?.close();
    await sink?.stop();
    await (hosts ?? cluster).stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
