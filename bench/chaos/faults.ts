/**
 * Fault injection against a LocalCluster, every kind the runtime claims to survive:
 *   - crash-actor:  the fault drill (`herald.ctl.<node>` crash-actor) on a random running actor of
 *                   a random live node;
 *   - kill-node:    SIGKILL of a random live node that is not the master, restarted a few seconds later;
 *   - kill-master:  SIGKILL of the master, restarted a few seconds later;
 *   - restart-nats: nats-server itself stopped and started again on its port, store kept;
 *   - kill-nats:    SIGKILL of one nats-server of a multi-server NATS, started again a few seconds
 *                   later on its store (needs a JetStream cluster: the others carry on meanwhile);
 * and on hosts (runtime/testing/hosts.ts) only:
 *   - cut-host:     the master's host taken off the network (link down), healed a few seconds later;
 *                   the master must move; after the heal, one master at a higher epoch;
 *   - kill-master-host: SIGKILL of the master's host's nats-server and node together, both started
 *                   again a few seconds later.
 * Each fault waits until the cluster is whole again (every node alive, every actor running) and
 * records how long that took; a cluster that does not recover in time is a failed fault.
 */
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { gatherStatus } from "../../runtime/supervisor/cluster-status.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { randomIndex } from "../../runtime/rules/random.js";
import type { ControlReply } from "../../runtime/supervisor/supervisor.js";
import type { ClusterStatus } from "../../runtime/supervisor/status.js";
import { waitFor, type HostCluster, type LocalCluster } from "../../runtime/testing/index.js";

export const FAULT_KINDS = ["crash-actor", "kill-node", "kill-master", "restart-nats", "kill-nats", "cut-host", "kill-master-host"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The kinds a cluster can take: kill-nats needs several servers, the host kinds a HostCluster. */
export function faultKindsFor(opts: { servers: number; hosts: boolean }): FaultKind[] {
  return FAULT_KINDS.filter((k) => (k === "kill-nats" ? opts.servers > 1 : k === "cut-host" || k === "kill-master-host" ? opts.hosts : true));
}

/** How the load is doing, for the time until messages offered after a fault are delivered again. */
export interface FlowProbe {
  /** A mark of "now" in the load. */
  mark(): number;
  /** True once deliveries have caught up with what was acked since `mark`. */
  resumed(mark: number): boolean;
  /**
   * When, after `since` (performance.now()), the last publish that JetStream failed to acknowledge
   * was sent; undefined if none failed. Past it JetStream took publishes again: what deliveries
   * took beyond that is Herald's own catching up.
   */
  lastRefusedSince?(since: number): number | undefined;
}

export interface FaultRecord {
  kind: FaultKind;
  /** When it was injected, ms since the injector's start. */
  atMs: number;
  /** `n3/pusher-0`, `n2`, `nats-server`. */
  target: string;
  /** What happened and how recovery went. */
  detail: string;
  /** Injected, and the cluster whole again within the deadline. */
  ok: boolean;
  /** Until another node held the master lease, ms (faults that take the master away). */
  failoverMs?: number;
  /** Until deliveries caught up with what was acked since the fault, ms (with a FlowProbe). */
  flowMs?: number;
  /** Until the last publish JetStream refused (timed out, no leader) during the fault, ms; 0: none. */
  jetStreamBackMs?: number;
  /** From the restart (or heal) until the cluster was whole again, ms. */
  recoverMs?: number;
  /** The master lease before and after (faults that take the master away). */
  masterBefore?: { node: string; epoch: number };
  masterAfter?: { node: string; epoch: number };
}

export interface FaultInjectorOptions {
  /** Seeded source for every choice (targets, down times). */
  random: () => number;
  /** A SIGKILLed node stays down for a time drawn from [min, max], ms. @defaultValue [2000, 5000] */
  downMs?: [number, number];
  /** Deadline for the cluster to be whole again after a fault, ms. @defaultValue 30000 */
  recoverTimeoutMs?: number;
  /** Called with each record as soon as the fault is over. */
  onFault?: (record: FaultRecord) => void;
  /** The hosts the cluster runs on, for the host kinds. */
  hosts?: HostCluster;
  /** Measures when deliveries resume after each fault (`flowMs`). */
  flow?: FlowProbe;
  /** Options of the injector's own connection (HOSTS_CLIENT on hosts). */
  connection?: Partial<ConnectionOptions>;
}

/** What a status shows, in one line: master, and each node's state, role and actors not running. */
export function describeStatus(s: ClusterStatus | undefined): string {
  if (!s) return "no status answered";
  const nodes = s.nodes.map((n) => {
    const down = n.actors.filter((a) => a.state !== "running").map((a) => `${a.id} ${a.state}`);
    return `${n.name} ${n.state}/${n.role}${n.actors.length === 0 ? " no actors" : ""}${down.length ? ` (${down.join(", ")})` : ""}`;
  });
  return `master ${s.master ? `${s.master.node}@${s.master.epoch}` : "none"}; ${nodes.join("; ")}`;
}

/** Every configured node alive, and every actor of every node running. */
export function whole(s: ClusterStatus): boolean {
  return s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));
}

/**
 * One status poll may take this long, ms. A request sent just as the broker goes away can wait
 * for its full timeout; cutting it short keeps recovery times honest.
 */
const STATUS_ATTEMPT_MS = 3000;

export class FaultInjector {
  readonly log: FaultRecord[] = [];
  private readonly t0 = performance.now();
  private readonly random: () => number;
  private readonly downMs: [number, number];
  private readonly recoverTimeoutMs: number;

  private constructor(
    private readonly cluster: LocalCluster,
    /** Our own connection, reconnecting fast, so a broker restart is not measured by a slow client. */
    private readonly nc: NatsConnection,
    private readonly opts: FaultInjectorOptions,
  ) {
    this.random = opts.random;
    this.downMs = opts.downMs ?? [2000, 5000];
    this.recoverTimeoutMs = opts.recoverTimeoutMs ?? 30_000;
  }

  /** Times our connection got back to the broker. */
  private reconnects = 0;

  static async start(cluster: LocalCluster, opts: FaultInjectorOptions): Promise<FaultInjector> {
    const nc = await connect({ servers: cluster.nats.url, name: "chaos-faults", maxReconnectAttempts: -1, reconnectTimeWait: 100, ...opts.connection });
    const injector = new FaultInjector(cluster, nc, opts);
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") injector.reconnects++;
    })();
    return injector;
  }

  async close(): Promise<void> {
    await this.nc.close().catch(() => undefined);
  }

  /** Injects one fault and waits for recovery; never throws (a failure is a record with ok false). */
  async inject(kind: FaultKind): Promise<FaultRecord> {
    const atMs = performance.now() - this.t0;
    let rec: Omit<FaultRecord, "kind" | "atMs">;
    try {
      rec = await this.run(kind);
    } catch (err) {
      rec = { target: "?", detail: `failed: ${err instanceof Error ? err.message : String(err)}`, ok: false };
    }
    const record = { kind, atMs, ...rec };
    this.log.push(record);
    this.opts.onFault?.(record);
    return record;
  }

  private run(kind: FaultKind): Promise<Omit<FaultRecord, "kind" | "atMs">> {
    switch (kind) {
      case "crash-actor":
        return this.crashActor();
      case "kill-node":
        return this.killNode(false);
      case "kill-master":
        return this.killNode(true);
      case "restart-nats":
        return this.restartNats();
      case "kill-nats":
        return this.killNats();
      case "cut-host":
        return this.cutMasterHost();
      case "kill-master-host":
        return this.killMasterHost();
    }
  }

  private async crashActor() {
    const s = await this.status();
    const nodes = s.nodes.filter((n) => n.state === "alive" && n.actors.some((a) => a.state === "running"));
    if (nodes.length === 0) throw new Error("no live node with a running actor");
    const node = this.pick(nodes);
    const actor = this.pick(node.actors.filter((a) => a.state === "running"));
    const target = `${node.name}/${actor.id}`;
    const t = performance.now();
    const reply = decode<ControlReply>(
      (await this.nc.request(`herald.ctl.${node.name}`, encode({ cmd: "crash-actor", actor: actor.id }), { timeout: 5000 })).data,
    );
    if (!reply.ok) return { target, detail: `drill refused: ${reply.error}`, ok: false };
    const back = (st: ClusterStatus) =>
      st.nodes.find((n) => n.name === node.name)?.actors.some((a) => a.id === actor.id && a.state === "running" && a.restarts > actor.restarts);
    return this.recovered(target, t, "respawned", back);
  }

  private async killNode(master: boolean) {
    const s = await this.status();
    const lease = s.master?.node ?? undefined;
    const live = s.nodes.filter((n) => n.state === "alive" && (master ? n.name === lease : n.name !== lease));
    if (live.length === 0) throw new Error(master ? "no live master to kill" : "no live non-master node to kill");
    const name = this.pick(live).name;
    const down = this.downTime();
    const t = performance.now();
    const mark = this.opts.flow?.mark();
    // Measured alongside the fault, the restart and the recovery: the outage lasts its scheduled time.
    const caughtUp = this.flowResumed(t, mark);
    await this.cluster.kill(name, "SIGKILL");
    let moved: Awaited<ReturnType<FaultInjector["masterMoved"]>> | undefined;
    if (master) {
      moved = await this.masterMoved({ node: name, epoch: s.master!.epoch }, t);
      if (!moved.ok) return { target: name, ...moved };
    }
    await this.until(t + down);
    this.cluster.startNode(name);
    const r = await this.recoveredMs(name, "whole again", whole);
    const { flowMs, jetStreamBackMs } = await caughtUp;
    return { ...r, ...moved, flowMs, jetStreamBackMs, ok: r.ok, detail: `${moved ? `${moved.detail}; ` : ""}down ${Math.round(down)} ms; ${this.flowText(flowMs)}${r.detail}` };
  }

  private async restartNats() {
    const t = performance.now();
    const before = this.reconnects;
    const server = this.cluster.nats.server;
    // With several servers our connection may be on another one, and never reconnect.
    const ours = this.nc.getServer() === new URL(server.url).host;
    await server.restart();
    const outage = ms(t);
    // A status request sent while our own client has not noticed the restart would wait its full
    // timeout and inflate the recovery time: poll only once we are back.
    if (ours) await waitFor(() => this.reconnects > before, { timeoutMs: this.recoverTimeoutMs, intervalMs: 10, what: "our reconnect" });
    const r = await this.recoveredMs("nats-server", "cluster whole", whole);
    return { ...r, detail: `server back in ${outage}; ${r.detail}` };
  }

  private async killNats() {
    const servers = this.cluster.nats.servers;
    if (servers.length < 2) throw new Error("kill-nats needs a multi-server NATS (a JetStream cluster)");
    const i = randomIndex(this.random, servers.length);
    const server = servers[i]!;
    const target = `nats-server s${i + 1}`;
    const down = this.downTime();
    const t = performance.now();
    const mark = this.opts.flow?.mark();
    // Measured alongside the fault, the restart and the recovery: the outage lasts its scheduled time.
    const caughtUp = this.flowResumed(t, mark);
    await server.kill();
    await this.until(t + down);
    await server.restart();
    const r = await this.recoveredMs(target, "cluster whole", whole);
    const { flowMs, jetStreamBackMs } = await caughtUp;
    return { ...r, flowMs, jetStreamBackMs, detail: `down ${Math.round(down)} ms; ${this.flowText(flowMs)}${r.detail}` };
  }

  private cutMasterHost() {
    const hosts = this.requireHosts("cut-host");
    return this.masterHostOutage(hosts, "cut", {
      take: (host) => hosts.cut(host),
      restore: (host) => hosts.heal(host),
      // Whole again, with one master holding the lease at a higher epoch: the old master fenced
      // itself while cut off. It may be that master again (the lease churns while the registry's
      // raft leader moves, and any node may win it back), but only under a new epoch.
      what: "healed, whole, one master at a higher epoch",
      recovered: (s, before) =>
        whole(s) &&
        s.master !== null &&
        s.master.epoch > before.epoch &&
        s.nodes.filter((n) => n.role === "master").map((n) => n.name).join() === s.master.node,
    });
  }

  private killMasterHost() {
    const hosts = this.requireHosts("kill-master-host");
    return this.masterHostOutage(hosts, "down", {
      take: async (host) => {
        await Promise.all([hosts.killNats(host), hosts.killNode(host)]);
      },
      restore: async (host) => {
        await hosts.restartNats(host);
        hosts.startNode(host);
      },
      what: "whole again",
      recovered: (s) => whole(s),
    });
  }

  /**
   * The master's host taken away for a drawn time and given back: the master must move meanwhile,
   * and the cluster recover as `recovered` says. Deliveries are measured alongside, so the outage
   * lasts its scheduled time.
   */
  private async masterHostOutage(
    hosts: HostCluster,
    word: string,
    step: {
      take: (host: number) => Promise<void>;
      restore: (host: number) => Promise<void>;
      what: string;
      recovered: (s: ClusterStatus, before: { node: string; epoch: number }) => boolean;
    },
  ) {
    const before = await this.masterNow();
    const host = hosts.hostOf(before.node);
    const target = `host ${host} (${before.node}, master)`;
    const down = this.downTime();
    const t = performance.now();
    const caughtUp = this.flowResumed(t, this.opts.flow?.mark());
    await step.take(host);
    const moved = await this.masterMoved(before, t);
    await this.until(t + down);
    await step.restore(host);
    const r = await this.recoveredMs(target, step.what, (s) => step.recovered(s, before));
    const { flowMs, jetStreamBackMs } = await caughtUp;
    return { ...r, ...moved, flowMs, jetStreamBackMs, ok: r.ok && moved.ok, detail: `${moved.detail}; ${word} ${Math.round(down)} ms; ${this.flowText(flowMs)}${r.detail}` };
  }

  private flowText(flowMs: number | undefined): string {
    if (!this.opts.flow) return "";
    return flowMs === undefined ? `deliveries NOT caught up within ${this.recoverTimeoutMs} ms; ` : `deliveries caught up after ${flowMs} ms; `;
  }

  private requireHosts(kind: FaultKind): HostCluster {
    if (!this.opts.hosts) throw new Error(`${kind} needs the cluster on hosts (chaos --hosts)`);
    return this.opts.hosts;
  }

  private async masterNow(): Promise<{ node: string; epoch: number }> {
    const s = await this.waitStatus("a master", (st) => !!st.master?.node, this.recoverTimeoutMs);
    return { node: s.master!.node!, epoch: s.master!.epoch };
  }

  /** Waits for another node to hold the lease at a higher epoch. */
  private async masterMoved(before: { node: string; epoch: number }, since: number) {
    const next = await this
      .waitStatus("a new master", (st) => !!st.master?.node && st.master.node !== before.node && st.master.epoch > before.epoch, this.recoverTimeoutMs)
      .catch(() => undefined);
    if (!next) return { masterBefore: before, ok: false, detail: `no new master within ${this.recoverTimeoutMs} ms` };
    // The new master's own event, when the harness got it, dates the takeover better than a
    // status poll, which waits for the registry's stream to answer again.
    const acquired = this.cluster.events.find(
      (e) => e.type === "master.acquired" && e.node !== before.node && (e.epoch ?? 0) > before.epoch && e.receivedAt >= since,
    );
    const failoverMs = Math.round((acquired?.receivedAt ?? performance.now()) - since);
    const masterAfter = { node: next.master!.node!, epoch: next.master!.epoch };
    return { masterBefore: before, masterAfter, failoverMs, ok: true, detail: `master ${before.node}@${before.epoch} → ${masterAfter.node}@${masterAfter.epoch} in ${failoverMs} ms` };
  }

  /**
   * Until the flow probe sees deliveries caught up with what was acked after `mark`, and until
   * JetStream last refused a publish meanwhile; both undefined without a probe, flowMs on timeout.
   */
  private async flowResumed(since: number, mark: number | undefined): Promise<{ flowMs?: number; jetStreamBackMs?: number }> {
    const flow = this.opts.flow;
    if (!flow || mark === undefined) return {};
    const ok = await waitFor(() => flow.resumed(mark), { timeoutMs: this.recoverTimeoutMs, intervalMs: 100, what: "deliveries caught up" }).catch(() => false);
    const refused = flow.lastRefusedSince?.(since);
    return {
      ...(ok ? { flowMs: Math.round(performance.now() - since) } : {}),
      ...(flow.lastRefusedSince ? { jetStreamBackMs: refused === undefined ? 0 : Math.round(refused - since) } : {}),
    };
  }

  private async recoveredMs(target: string, what: string, pred: (s: ClusterStatus) => boolean) {
    const t = performance.now();
    const r = await this.recovered(target, t, what, pred);
    return { ...r, ...(r.ok ? { recoverMs: Math.round(performance.now() - t) } : {}) };
  }

  private downTime(): number {
    return this.downMs[0] + this.random() * (this.downMs[1] - this.downMs[0]);
  }

  /** The schedule's own timer: how long a fault lasts, not a wait for anything. */
  private async until(at: number): Promise<void> {
    const left = at - performance.now();
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }

  /** Waits for `pred`, and words how long it took (or that it never came). */
  private async recovered(target: string, since: number, what: string, pred: (s: ClusterStatus) => boolean | undefined) {
    let last: ClusterStatus | undefined;
    try {
      await this.waitStatus(what, (s) => ((last = s), !!pred(s)), this.recoverTimeoutMs);
      return { target, detail: `${what} in ${ms(since)}`, ok: true };
    } catch {
      return { target, detail: `NOT ${what} within ${this.recoverTimeoutMs} ms (last seen: ${describeStatus(last)})`, ok: false };
    }
  }

  private status(): Promise<ClusterStatus> {
    const c = this.cluster.config;
    const config = { cluster: c.cluster, subjectPrefix: "herald", nodes: c.nodes, heartbeat: c.heartbeat };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no status within ${STATUS_ATTEMPT_MS} ms`)), STATUS_ATTEMPT_MS);
    });
    return Promise.race([gatherStatus(this.nc, config), late]).finally(() => clearTimeout(timer));
  }

  private async waitStatus(what: string, pred: (s: ClusterStatus) => boolean, timeoutMs: number): Promise<ClusterStatus> {
    const found = await waitFor(
      async () => {
        const s = await this.status();
        return pred(s) ? s : undefined;
      },
      { timeoutMs, intervalMs: 50, what },
    );
    return found!;
  }

  private pick<T>(xs: T[]): T {
    return xs[randomIndex(this.random, xs.length)]!;
  }
}

function ms(since: number): string {
  return `${Math.round(performance.now() - since)} ms`;
}

export interface ScheduleOptions {
  random: () => number;
  /** Pause before each fault, drawn from [min, max], ms. */
  gapMs: [number, number];
  /** Faults beyond one of each kind, in random kinds. */
  extra: number;
  /** No new fault starts after this (performance.now()), except kinds not yet injected. */
  endAt: number;
  /** The kinds to inject (faultKindsFor). @defaultValue the four kinds every cluster takes */
  kinds?: readonly FaultKind[];
}

/**
 * Runs a random sequence of faults, one at a time, with random pauses between them. The plan
 * holds every kind at least once, shuffled among the extras; if time runs out, the extras are
 * dropped but every kind not yet injected still is, so each run covers all of them.
 */
export async function runSchedule(injector: FaultInjector, opts: ScheduleOptions): Promise<FaultRecord[]> {
  const kinds = opts.kinds ?? faultKindsFor({ servers: 1, hosts: false });
  const plan: FaultKind[] = [...kinds, ...Array.from({ length: opts.extra }, () => kinds[randomIndex(opts.random, kinds.length)]!)];
  shuffle(plan, opts.random);
  const done = new Set<FaultKind>();
  const out: FaultRecord[] = [];
  for (const kind of plan) {
    const late = performance.now() >= opts.endAt;
    if (late && done.has(kind)) continue;
    const gap = late ? opts.gapMs[0] : opts.gapMs[0] + opts.random() * (opts.gapMs[1] - opts.gapMs[0]);
    await new Promise((r) => setTimeout(r, gap));
    out.push(await injector.inject(kind));
    done.add(kind);
  }
  return out;
}

function shuffle<T>(xs: T[], random: () => number): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = randomIndex(random, i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}
