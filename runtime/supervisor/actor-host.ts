/**
 * One actor slot on the supervisor's side: spawns its thread, drives it over comlink, detects
 * death (exit/error events, ping timeout) and respawns it under the restart policy.
 */
import * as Comlink from "comlink";
import type { ActorKind } from "../config/index.js";
import type { ActorControl, ActorCounters, ActorInit } from "../actor/protocol.js";
import { ActorUnavailableError, TimeoutError, errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { EMPTY_SNAPSHOT, mergeSnapshots, withoutGauges, type MetricSnapshot } from "../metrics/meter.js";
import { monotonicNow, spawnWorker, type WorkerEnd, type WorkerThread } from "../platform/index.js";
import { RestartPolicy, type RestartOptions } from "./restart-policy.js";

export type ActorState = "starting" | "running" | "restarting" | "failed" | "stopping" | "stopped";

/** One actor as `herald status` shows it. */
export interface ActorSummary {
  id: string;
  kind: ActorKind;
  state: ActorState;
  restarts: number;
  processed: number;
  failed: number;
  lastError?: string;
  /** Kind-specific gauges of the running incarnation (sub-queue: held, inFlight, pauses…). */
  gauges?: Record<string, number>;
}

export interface ActorHostOptions {
  init: ActorInit;
  restart: RestartOptions;
  /** How often the thread is pinged, ms. */
  pingIntervalMs: number;
  /** A ping (or init) not answered within this is a hung thread, ms. */
  pingTimeoutMs: number;
  /** Compiled worker entry module. */
  entry: URL;
  log: Logger;
  /** Told of every restart and failure (supervisor events). */
  onEvent?: (event: {
    type: "actor.running" | "actor.restarted" | "actor.failed" | "actor.crashed";
    actor: string;
    reason: string;
    restarts: number;
  }) => void;
}

const INIT_TIMEOUT_MS = 15_000;

export class ActorHost {
  readonly id: string;
  readonly kind: ActorKind;
  private state: ActorState = "starting";
  private restarts = 0;
  private lastError: string | undefined;
  private readonly policy: RestartPolicy;
  private thread: WorkerThread | undefined;
  // Strong reference: a collected comlink proxy would release the endpoint under us.
  private proxy: Comlink.Remote<ActorControl> | undefined;
  private pending = new Set<(err: Error) => void>();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private generation = 0;
  /** Why we are terminating the current thread ourselves, if we are. */
  private endCause: Error | undefined;
  private stats: ActorCounters = { processed: 0, failed: 0 };
  /** Counters of earlier incarnations, so totals survive restarts. */
  private carried = { processed: 0, failed: 0 };
  /** The running incarnation's metrics as of its last report, and its predecessors' counts. */
  private metricsNow: MetricSnapshot = EMPTY_SNAPSHOT;
  private metricsCarried: MetricSnapshot = EMPTY_SNAPSHOT;
  private readonly startWaiters: (() => void)[] = [];

  constructor(private readonly opts: ActorHostOptions) {
    this.id = opts.init.id;
    this.kind = opts.init.kind;
    this.policy = new RestartPolicy(opts.restart);
  }

  /** Starts the thread; resolves when it is running for the first time, or has failed. */
  start(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.startWaiters.push(resolve));
    void this.spawn();
    return ready;
  }

  summary(): ActorSummary {
    const { processed, failed, ...gauges } = this.stats;
    void processed;
    void failed;
    return {
      id: this.id,
      kind: this.kind,
      state: this.state,
      restarts: this.restarts,
      processed: this.carried.processed + this.stats.processed,
      failed: this.carried.failed + this.stats.failed,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(Object.keys(gauges).length > 0 ? { gauges } : {}),
    };
  }

  /**
   * Every count this actor has made, earlier incarnations included: their counters and histograms
   * as of their last report (what a thread counted after it is lost with it), and the running
   * one's, asked for now when it is running (as of its last ping otherwise).
   */
  async metrics(): Promise<MetricSnapshot> {
    const proxy = this.proxy;
    if (proxy && this.state === "running") {
      const generation = this.generation;
      try {
        const r = await this.call("report", () => proxy.report(), this.opts.pingTimeoutMs);
        if (generation === this.generation) this.take(r.stats, r.metrics);
      } catch {
        // Its last ping's figures stand.
      }
    }
    return mergeSnapshots([this.metricsCarried, this.metricsNow]);
  }

  /** A kind's own request (ActorControl.request), answered within `timeoutMs`. */
  async request(body: unknown, timeoutMs: number): Promise<unknown> {
    const proxy = this.proxy;
    if (!proxy || this.state !== "running") throw new ActorUnavailableError(this.id, `it is ${this.state}`);
    return this.call("request", () => proxy.request(body), timeoutMs);
  }

  /** True while the thread is up and answering. */
  get running(): boolean {
    return this.state === "running";
  }

  /** Fault drill: the thread throws an uncaught error and dies (`crash`), or spins forever (`hang`). */
  async fault(kind: "crash" | "hang"): Promise<void> {
    const proxy = this.proxy;
    if (!proxy || this.state !== "running") throw new ActorUnavailableError(this.id, `it is ${this.state}`);
    const call = kind === "crash" ? () => proxy.crash("crash-actor requested by an operator") : () => proxy.hang();
    try {
      await this.call(kind, call, this.opts.pingTimeoutMs);
    } catch (err) {
      // The thread may die before its answer to the crash drill reaches us: that is the drill done.
      if (kind === "crash" && err instanceof ActorUnavailableError) return;
      throw err;
    }
  }

  /** Drains the actor and ends its thread; no restart follows. */
  async stop(drainTimeoutMs: number): Promise<void> {
    if (this.state === "stopped") return;
    const wasRunning = this.state === "running";
    this.state = "stopping";
    clearTimeout(this.restartTimer);
    clearInterval(this.pingTimer);
    const proxy = this.proxy;
    if (wasRunning && proxy) {
      try {
        await this.call("drain", () => proxy.drain(drainTimeoutMs), drainTimeoutMs + 1000);
      } catch (err) {
        this.opts.log.warn("drain did not complete", { actor: this.id, error: errorText(err) });
      }
    }
    await this.thread?.terminate();
    this.state = "stopped";
    this.resolveStartWaiters();
  }

  private async spawn(): Promise<void> {
    const generation = ++this.generation;
    this.carried.processed += this.stats.processed;
    this.carried.failed += this.stats.failed;
    this.stats = { processed: 0, failed: 0 };
    this.metricsCarried = mergeSnapshots([this.metricsCarried, withoutGauges(this.metricsNow)]);
    this.metricsNow = EMPTY_SNAPSHOT;
    const thread = spawnWorker(this.opts.entry, `${this.opts.init.node}/${this.id}`);
    this.thread = thread;
    const proxy = Comlink.wrap<ActorControl>(thread.endpoint);
    this.proxy = proxy;
    thread.onEnd((end) => this.onThreadEnd(generation, end));
    try {
      await this.call("init", () => proxy.init(this.opts.init), INIT_TIMEOUT_MS);
    } catch (err) {
      if (generation !== this.generation || this.state === "stopping" || this.state === "stopped") return;
      // A thread that cannot initialise is treated like a crash: restarted under the policy.
      this.lastError = `init failed: ${errorText(err)}`;
      this.opts.log.error("actor init failed", { actor: this.id, error: errorText(err) });
      await thread.terminate();
      this.onThreadEnd(generation, { error: err instanceof Error ? err : new Error(String(err)) });
      return;
    }
    if (generation !== this.generation || this.state === "stopping" || this.state === "stopped") return;
    this.state = "running";
    this.resolveStartWaiters();
    if (this.restarts > 0) this.opts.onEvent?.({ type: "actor.running", actor: this.id, reason: "respawned", restarts: this.restarts });
    this.pingTimer = setInterval(() => void this.ping(generation), this.opts.pingIntervalMs);
  }

  private async ping(generation: number): Promise<void> {
    const proxy = this.proxy;
    if (generation !== this.generation || this.state !== "running" || !proxy) return;
    try {
      const r = await this.call("ping", () => proxy.report(), this.opts.pingTimeoutMs);
      if (generation === this.generation) this.take(r.stats, r.metrics);
    } catch (err) {
      if (generation !== this.generation || this.state !== "running") return;
      if (err instanceof TimeoutError) {
        // A thread that does not answer is hung (or, on Deno, dead without an exit event).
        this.opts.log.warn("actor not answering, terminating it", { actor: this.id });
        const error = new Error(`no answer to ping within ${this.opts.pingTimeoutMs} ms`);
        // The exit event of the termination may come first: it must carry the real reason.
        this.endCause = error;
        await this.thread?.terminate();
        this.onThreadEnd(generation, { error });
      }
    }
  }

  private onThreadEnd(generation: number, end: WorkerEnd): void {
    if (generation !== this.generation) return;
    this.generation++; // later events from this thread are stale
    clearInterval(this.pingTimer);
    const cause = this.endCause ?? end.error;
    this.endCause = undefined;
    const reason = cause ? errorText(cause) : `exited with code ${end.code}`;
    this.rejectPending(new ActorUnavailableError(this.id, reason));
    if (this.state === "stopping" || this.state === "stopped") return;
    this.lastError = reason;
    this.opts.log.error("actor crashed", { actor: this.id, reason });
    this.opts.onEvent?.({ type: "actor.crashed", actor: this.id, reason, restarts: this.restarts });
    const decision = this.policy.onCrash(monotonicNow());
    if (decision.action === "fail") {
      this.state = "failed";
      this.opts.log.error("actor failed: restart intensity exceeded", { actor: this.id, crashes: decision.crashes });
      this.opts.onEvent?.({ type: "actor.failed", actor: this.id, reason, restarts: this.restarts });
      this.resolveStartWaiters();
      return;
    }
    this.state = "restarting";
    this.restartTimer = setTimeout(() => {
      if (this.state !== "restarting") return;
      this.restarts++;
      this.opts.onEvent?.({ type: "actor.restarted", actor: this.id, reason, restarts: this.restarts });
      void this.spawn();
    }, decision.delayMs);
  }

  private take(stats: ActorCounters, metrics: MetricSnapshot): void {
    this.stats = stats;
    this.metricsNow = metrics;
  }

  /** Every control call goes through here: it settles even if the thread dies mid-call. */
  private call<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        this.pending.delete(fail);
        reject(err);
      };
      const timer = setTimeout(() => fail(new TimeoutError(`${what} on actor ${this.id}`, timeoutMs)), timeoutMs);
      this.pending.add(fail);
      fn().then(
        (v) => {
          clearTimeout(timer);
          this.pending.delete(fail);
          resolve(v);
        },
        (err) => fail(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private rejectPending(err: Error): void {
    const all = [...this.pending];
    this.pending.clear();
    for (const fail of all) fail(err);
  }

  private resolveStartWaiters(): void {
    for (const w of this.startWaiters.splice(0)) w();
  }
}
