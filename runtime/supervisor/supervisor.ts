/**
 * One node's supervisor, on the process's main thread: the seed's daemon thread (spawns and
 * restarts actors) and heartbeat thread (registry record, liveness of others, master lease).
 */
import type { KV } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { monotonicFactory } from "ulid";
import type { ActorInit } from "../actor/protocol.js";
import { decode, encode } from "../codec/index.js";
import type { ActorKind, HeraldConfig, NodeConfig } from "../config/index.js";
import { systemClock } from "../clock.js";
import { errorText, HeraldError } from "../errors.js";
import type { Logger } from "../log.js";
import { configAccess, connectNats } from "../nats/connect.js";
import { bindBucket } from "../nats/buckets.js";
import { jetStreamIsOff, jetStreamNotNow } from "../nats/storage.js";
import { watchKv, type WatchHandle } from "../nats/kv-watch.js";
import { monotonicNow } from "../platform/index.js";
import { payloadRoomProblem } from "../pipeline/queue-io.js";
import { ensurePipeline } from "../pipeline/setup.js";
import { UnknownTopicSweeper } from "../pipeline/sweeper.js";
import { Releaser } from "../scheduled/index.js";
import { ActorHost } from "./actor-host.js";
import { LivenessJudge, type Judgement } from "./liveness.js";
import { leaseRequestTimeoutMs, MasterLease } from "./master-lease.js";
import { RateLimiter } from "./rate-limiter.js";
import { HeartbeatWriter, mainProcessIp, openRegistry, parseRecord } from "./registry.js";
import type { NodeReport } from "./status.js";
import { type Names, deathKey, names, nodeKey } from "../names.js";

/** Work only the master does (timing collectors); started on gaining the lease, stopped on losing it. */
export interface MasterDuty {
  name: string;
  start(epoch: number): Promise<void>;
  stop(): Promise<void>;
}

/** A control request on `herald.ctl.<node>`. */
export type ControlRequest = { cmd: "crash-actor" | "hang-actor"; actor: string };
export type ControlReply = { ok: true; detail?: string } | { ok: false; error: string };

/**
 * Config order, except that when collectors are configured, nodes able to run them (collector
 * actors > 0) come first: a master that cannot collect would leave every source unread.
 */
export function takeoverOrder(config: HeraldConfig): string[] {
  const canCollect = (n: NodeConfig) => config.collectors.length === 0 || n.actors.collector > 0;
  return [...config.nodes.filter(canCollect), ...config.nodes.filter((n) => !canCollect(n))].map((n) => n.name);
}

const WORKER_ENTRY = new URL("../actor/worker-entry.js", import.meta.url);
const newId = monotonicFactory();
/** A setup step that keeps failing is tried again at most this far apart, ms. */
const SET_UP_RETRY_MAX_MS = 5000;

export class Supervisor {
  readonly incarnation = newId();
  private readonly node: NodeConfig;
  private readonly names: Names;
  private nc!: NatsConnection;
  private kv!: KV;
  private hosts: ActorHost[] = [];
  private collectors: ActorHost[] = [];
  private readonly duties: MasterDuty[] = [];
  private readonly judge: LivenessJudge;
  private lease!: MasterLease;
  private heartbeat!: HeartbeatWriter;
  private lastBeatOk = monotonicNow();
  private beaten = false;
  private natsUp = false;
  private reconnects = 0;
  private stopReason: string | undefined;
  private readMark = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private watch: WatchHandle | undefined;
  private subs: Subscription[] = [];
  private stopping: Promise<void> | undefined;
  private readonly ip = mainProcessIp();
  private readonly startedAt = new Date().toISOString();
  /** Resolves when the node has stopped (by signal, `herald stop` or error). */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  constructor(
    private readonly config: HeraldConfig,
    nodeName: string,
    private readonly log: Logger,
  ) {
    const node = config.nodes.find((n) => n.name === nodeName);
    if (!node) throw new Error(`no node named "${nodeName}" in the config`);
    this.node = node;
    this.names = names(config.subjectPrefix);
    this.judge = new LivenessJudge(config.heartbeat.timeoutMs);
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    // The releaser first: scheduled messages due during a failover wait for it.
    this.duties.push(this.releaserDuty(), this.collectorDuty(), this.sweeperDuty(), this.rateLimitDuty());
  }

  /** Adds work that runs only while this node is master. */
  addDuty(duty: MasterDuty): void {
    this.duties.push(duty);
  }

  async start(): Promise<void> {
    const { config } = this;
    this.nc = await connectNats({ ...configAccess(config.nats), name: `herald:${this.node.name}:supervisor`, inboxPrefix: this.names.nodeInbox });
    if (this.stopping) {
      await this.nc.close();
      return;
    }
    const nc = this.nc;
    this.natsUp = true;
    void this.followConnection(nc).catch(() => (this.natsUp = false));
    const room = payloadRoomProblem(config.limits.maxPayloadBytes, nc.info?.max_payload ?? Number.MAX_SAFE_INTEGER);
    if (room !== undefined) throw new HeraldError("CONFIG", room);
    const storage = { nc, replicas: config.nats.replicas, log: this.log };
    const kv = await this.setUp("the node registry", () => openRegistry(storage, this.names.registryBucket));
    if (kv === undefined) return;
    this.kv = kv;
    // The lease gets a handle of its own on the same bucket, whose requests time out well inside
    // its self-fencing window: with the client's 5 s default, a request stuck on a node cut off
    // from NATS would hold the lease loop long after others may have taken over. The heartbeat
    // keeps the default: a slow beat only delays this node's record.
    const { intervalMs, timeoutMs } = config.heartbeat;
    // Its reads go to the bucket's leader: a compare-and-set on a value a lagging replica served
    // would fail, and a renewal that fails loses the lease (buckets.ts, leaderReads).
    const leaseKv = await this.setUp("the master lease", () =>
      bindBucket(nc, this.names.registryBucket, { timeoutMs: leaseRequestTimeoutMs(intervalMs, timeoutMs), leaderReads: true }),
    );
    if (leaseKv === undefined) return;
    this.heartbeat = new HeartbeatWriter(this.kv, leaseKv, nodeKey(this.node.name), () => {
      this.log.info("isStopServer set: stopping");
      void this.stop("isStopServer");
    });
    this.lease = new MasterLease({
      kv: leaseKv,
      node: this.node.name,
      incarnation: this.incarnation,
      preset: config.master.preset === this.node.name,
      order: takeoverOrder(config),
      intervalMs,
      timeoutMs,
      isAlive: (n) => this.judge.judge(n, monotonicNow())?.state === "alive",
      now: monotonicNow,
      log: this.log.child("lease"),
      onGain: (epoch) => void this.onGain(epoch),
      onLose: (epoch, reason) => void this.onLose(epoch, reason),
    });
    this.watch = watchKv(this.nc, this.kv, "node.>", (e) => {
      const name = e.key.slice("node.".length);
      const rec = parseRecord(e);
      if (rec) this.judge.observe(name, rec, monotonicNow());
      else this.judge.forget(name);
    }, this.log.child("registry"));
    this.serveStatus();
    this.serveControl();
    // The first write to the registry: on a fresh replicated bucket it can come before the
    // bucket's stream has a leader.
    await this.setUp("the first heartbeat", () => this.beat());
    if (this.stopping) return;
    await this.setUp("the message queue", () => ensurePipeline(nc, config, this.log));
    if (this.stopping) return;
    for (const kind of ["ingest", "subqueue", "processor", "pusher"] as const) {
      for (let i = 0; i < this.node.actors[kind]; i++) this.hosts.push(this.host(kind, i));
    }
    await Promise.all(this.hosts.map((h) => h.start()));
    if (this.stopping) return;
    this.timer = setInterval(() => void this.tick(), config.heartbeat.intervalMs);
    await this.tick();
    this.log.info("node started", { actors: this.hosts.length, incarnation: this.incarnation });
  }

  /**
   * Runs a JetStream setup step (buckets, streams, consumers), trying again while JetStream may
   * still be starting, electing a leader or slow to answer: a request timeout must not kill a
   * starting node. A timeout or "temporarily unavailable" ({@link jetStreamNotNow}) is retried for
   * as long as it lasts, every few seconds, each try logged; JetStream off for the account is final
   * at once (checked with the JetStream API, see {@link jetStreamIsOff}: "no responders" alone also
   * means a new replicated stream without a leader yet); any other failure gives up after 20 tries
   * (about 50 s). Either way the error is one line naming the step and the server's answer.
   * Resolves undefined when the node is stopped meanwhile.
   */
  private async setUp<T>(what: string, step: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 1, other = 0; !this.stopping; attempt++) {
      try {
        return await step();
      } catch (err) {
        const text = errorText(err);
        if (await jetStreamIsOff(this.nc, err)) {
          throw new HeraldError("NATS", `cannot set up ${what} on NATS: JetStream is not enabled (${text}); start nats-server with -js, or enable JetStream for this account`);
        }
        if (!jetStreamNotNow(err) && ++other >= 20) {
          throw new HeraldError("NATS", `cannot set up ${what} on NATS after ${attempt} tries: ${text}`);
        }
        this.log.warn(`setting up ${what} failed; trying again`, { attempt, error: text });
        await new Promise((r) => setTimeout(r, Math.min(SET_UP_RETRY_MAX_MS, 250 * attempt)));
      }
    }
    return undefined;
  }

  /** Drains actors, gives up the lease, records `stopped`, closes NATS. Idempotent. */
  stop(reason: string): Promise<void> {
    this.stopReason ??= reason;
    this.stopping ??= this.shutdown(reason);
    return this.stopping;
  }

  // What the node's HTTP server and metrics read (runtime/node/ops.ts).

  get nodeName(): string {
    return this.node.name;
  }

  /** The supervisor's NATS connection, once made. */
  connection(): NatsConnection | undefined {
    return this.nc;
  }

  natsConnected(): boolean {
    return this.natsUp;
  }

  natsReconnects(): number {
    return this.reconnects;
  }

  isMaster(): boolean {
    return this.lease?.isMaster() ?? false;
  }

  /** The master lease as last read; undefined before the first read. */
  masterHolder(): { node: string | null; epoch: number } | undefined {
    return this.lease?.holder();
  }

  /** Whether node `name` is alive as this supervisor judges it. */
  judgedAlive(name: string): boolean {
    return name === this.node.name || this.judge.judge(name, monotonicNow())?.state === "alive";
  }

  /** Every actor of the node, collectors included. */
  actorHosts(): readonly ActorHost[] {
    return [...this.hosts, ...this.collectors];
  }

  /** Time since the last registry write that succeeded; undefined before the first. */
  heartbeatAgeMs(): number | undefined {
    return this.beaten ? monotonicNow() - this.lastBeatOk : undefined;
  }

  /** Why the node is stopping; undefined while it runs. */
  stoppingReason(): string | undefined {
    return this.stopReason;
  }

  /** Tracks the connection's state for readiness and metrics. */
  private async followConnection(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") this.natsUp = false;
      else if (s.type === "reconnect") {
        this.natsUp = true;
        this.reconnects++;
      }
    }
    this.natsUp = false;
  }

  private async shutdown(reason: string): Promise<void> {
    this.log.info("node stopping", { reason });
    clearInterval(this.timer);
    const drainMs = this.config.supervisor.drainTimeoutMs;
    try {
      // Any step may be missing when the stop comes while the node is still starting.
      if (this.lease?.isMaster()) await this.lease.release();
      await Promise.all([...this.hosts, ...this.collectors].map((h) => h.stop(drainMs)));
      if (this.heartbeat) await this.beat("stopped");
    } catch (err) {
      this.log.error("error while stopping", { error: errorText(err) });
    }
    this.watch?.stop();
    for (const s of this.subs) s.unsubscribe();
    await this.nc?.drain().catch(() => undefined);
    this.log.info("node stopped");
    this.resolveStopped();
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.lease.tick();
    } catch (err) {
      this.log.warn("lease step failed", { error: errorText(err) });
    }
    if (this.stopping) return;
    await this.beat().catch((err) => this.log.warn("heartbeat write failed", { error: errorText(err) }));
  }

  private async beat(state: "alive" | "stopped" = this.stopping ? "stopped" : "alive"): Promise<void> {
    const master = this.lease?.isMaster() ?? false;
    this.readMark = await this.heartbeat.beat({
      id: this.incarnation,
      mainProcessIp: this.ip,
      serverName: this.node.name,
      cluster: this.config.cluster,
      role: master ? "master" : "slave",
      epoch: master ? (this.lease.epoch() ?? null) : null,
      pid: process.pid,
      state,
      startedAt: this.startedAt,
      actors: this.actorSummaries(),
    });
    this.lastBeatOk = monotonicNow();
    this.beaten = true;
  }

  private actorSummaries() {
    return [...this.hosts, ...this.collectors].map((h) => h.summary());
  }

  report(): NodeReport {
    const now = monotonicNow();
    const view: Record<string, Judgement> = {};
    for (const n of this.judge.nodes()) {
      const j = this.judge.judge(n, now);
      if (j) view[n] = j;
    }
    const master = this.lease.isMaster();
    return {
      cluster: this.config.cluster,
      name: this.node.name,
      pid: process.pid,
      mainProcessIp: this.ip,
      role: master ? "master" : "slave",
      epoch: master ? (this.lease.epoch() ?? null) : null,
      readMark: this.readMark,
      heartbeatAgeMs: Math.round(now - this.lastBeatOk),
      isStopServer: this.heartbeat.stopRequested,
      stopping: this.stopping !== undefined,
      actors: this.actorSummaries(),
      view,
      master: this.lease.holder() ?? null,
    };
  }

  private serveStatus(): void {
    const sub = this.nc.subscribe(this.names.status, {
      callback: (err, msg) => {
        if (err) return;
        msg.respond(encode(this.report()));
      },
    });
    this.subs.push(sub);
  }

  private serveControl(): void {
    const sub = this.nc.subscribe(this.names.ctl(this.node.name), {
      callback: (err, msg) => {
        if (err) return;
        void this.control(msg.data).then((reply) => msg.respond(encode(reply)));
      },
    });
    this.subs.push(sub);
  }

  private async control(data: Uint8Array): Promise<ControlReply> {
    let req: ControlRequest;
    try {
      req = decode<ControlRequest>(data);
    } catch (err) {
      return { ok: false, error: `malformed control request: ${errorText(err)}` };
    }
    if (req?.cmd !== "crash-actor" && req?.cmd !== "hang-actor") {
      return { ok: false, error: `unknown control command "${String(req?.cmd)}"` };
    }
    if (!this.config.faultInjection) {
      return { ok: false, error: `fault injection is disabled on node ${this.node.name}: set "faultInjection": true in the cluster config to allow fault drills` };
    }
    const all = [...this.hosts, ...this.collectors];
    const host = all.find((h) => h.id === req.actor);
    if (!host) {
      return { ok: false, error: `no actor "${req.actor}" on node ${this.node.name} (actors: ${all.map((h) => h.id).join(", ") || "none"})` };
    }
    try {
      const kind = req.cmd === "crash-actor" ? "crash" : "hang";
      await host.fault(kind);
      this.log.warn(`fault drill: actor ${kind === "crash" ? "crashed" : "hung"} on request`, { actor: host.id });
      return { ok: true, detail: `actor ${host.id} on ${this.node.name} ${kind === "crash" ? "crashed" : "hung"}` };
    } catch (err) {
      return { ok: false, error: errorText(err) };
    }
  }

  private host(kind: ActorKind, index: number, epoch?: number): ActorHost {
    const { config } = this;
    const init: ActorInit = {
      cluster: config.cluster,
      node: this.node.name,
      id: `${kind}-${index}`,
      kind,
      index,
      servers: config.nats.servers,
      subjectPrefix: config.subjectPrefix,
      // Plain data: the worker receives its own structured clone.
      config,
      ...(epoch === undefined ? {} : { epoch }),
    };
    return new ActorHost({
      init,
      restart: config.supervisor.restart,
      pingIntervalMs: config.supervisor.pingIntervalMs,
      pingTimeoutMs: config.supervisor.pingTimeoutMs,
      entry: WORKER_ENTRY,
      log: this.log,
      onEvent: (e) => {
        this.emit(e.type, { actor: e.actor, reason: e.reason, restarts: e.restarts });
        if (e.type === "actor.crashed") void this.recordDeath(e.actor, e.reason);
      },
    });
  }

  /**
   * Why an actor died, where a poison dead letter can quote it: the actor that retires a message
   * for killing its readers cannot know how they died, their supervisors do.
   */
  private async recordDeath(actor: string, reason: string): Promise<void> {
    try {
      const kv = await bindBucket(this.nc, names(this.config.subjectPrefix).poisonBucket);
      await kv.put(deathKey(this.node.name, actor), JSON.stringify({ reason: reason.slice(0, 500), at: new Date().toISOString() }));
    } catch (err) {
      this.log.debug("could not record an actor's death", { actor, error: errorText(err) });
    }
  }

  /** Hands out the push tokens of rate-limited topics (see rate-limiter.ts). */
  private rateLimitDuty(): MasterDuty {
    let limiter: RateLimiter | undefined;
    return {
      name: "rate limits",
      start: async () => {
        limiter = new RateLimiter(this.nc, this.config.subjectPrefix, systemClock, this.log.child("rate"));
        limiter.start();
      },
      stop: async () => {
        limiter?.stop();
        limiter = undefined;
      },
    };
  }

  /** Moves messages of unconfigured topics into dead letters (see sweeper.ts). */
  private sweeperDuty(): MasterDuty {
    let sweeper: UnknownTopicSweeper | undefined;
    return {
      name: "unknown-topic sweeper",
      start: async () => {
        sweeper = new UnknownTopicSweeper(this.nc, this.config, systemClock, this.log.child("sweeper"));
        sweeper.start();
      },
      stop: async () => {
        await sweeper?.stop();
        sweeper = undefined;
      },
    };
  }

  /** Releases scheduled messages when they are due (runtime/scheduled/releaser.ts). */
  private releaserDuty(): MasterDuty {
    let releaser: Releaser | undefined;
    return {
      name: "scheduled releaser",
      start: async () => {
        releaser = new Releaser({ nc: this.nc, config: this.config, log: this.log.child("scheduled"), prober: `${this.node.name}-supervisor` });
        await releaser.start();
      },
      stop: async () => {
        const stopping = releaser;
        releaser = undefined;
        await stopping?.stop();
      },
    };
  }

  /**
   * Collector actors are a master duty: they exist only while this node holds the lease, and only
   * when the config has collectors (a collector thread with nothing to collect costs ~25 MiB).
   */
  private collectorDuty(): MasterDuty {
    return {
      name: "collectors",
      start: async (epoch) => {
        this.collectors = [];
        const count = this.config.collectors.length === 0 ? 0 : this.node.actors.collector;
        if (this.config.collectors.length === 0) this.log.info("no collectors configured: no collector thread started");
        if (count === 0 && this.config.collectors.length > 0) {
          this.log.warn("this node is master but runs no collector actors: configured collectors are not collected", {
            collectors: this.config.collectors.length,
          });
        }
        // The epoch is the fencing token of the collectors' checkpoint writes.
        for (let i = 0; i < count; i++) this.collectors.push(this.host("collector", i, epoch));
        await Promise.all(this.collectors.map((h) => h.start()));
      },
      stop: async () => {
        const stopping = this.collectors;
        this.collectors = [];
        // Stop at once: a deposed master must not keep collecting.
        await Promise.all(stopping.map((h) => h.stop(0)));
      },
    };
  }

  private async onGain(epoch: number): Promise<void> {
    this.emit("master.acquired", { epoch });
    for (const d of this.duties) {
      await d.start(epoch).catch((err) => this.log.error("master duty failed to start", { duty: d.name, error: errorText(err) }));
    }
  }

  private async onLose(epoch: number, reason: string): Promise<void> {
    this.emit("master.lost", { epoch, reason });
    for (const d of this.duties) {
      await d.stop().catch((err) => this.log.error("master duty failed to stop", { duty: d.name, error: errorText(err) }));
    }
  }

  private emit(type: string, fields: Record<string, unknown>): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(this.names.events, encode({ type, node: this.node.name, at: Date.now(), ...fields }));
  }
}
