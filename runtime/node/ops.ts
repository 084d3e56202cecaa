/**
 * What a node's HTTP port answers about the node (runtime/node/http-server.ts): submissions
 * handed to its ingest actors, the cluster status, its metrics, liveness and readiness — all read
 * from its supervisor.
 */
import { mergeSnapshots } from "../metrics/meter.js";
import { NodeMetrics } from "../metrics/node-metrics.js";
import type { HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import { heraldVersion } from "../platform/repo.js";
import { gatherStatus, pipelineCounts } from "../supervisor/cluster-status.js";
import type { Supervisor } from "../supervisor/supervisor.js";
import type { SubmitReply } from "../pipeline/work.js";
import type { Logger } from "../log.js";
import { NodeAdmin } from "./admin.js";
import { SseHub } from "./sse-hub.js";
import { names } from "../names.js";
import { bindBucket } from "../nats/buckets.js";
import { breakerStates, listEndpoints } from "../pipeline/endpoints.js";
import type { NodeHttpApp, ReadyCheck } from "./http-server.js";

/** An HTTP submission waits this long for the ingest actor's answer (it answers once durable), ms. */
const SUBMIT_TIMEOUT_MS = 30_000;
/** The console's live update is read at most this often, whatever the number of consoles, ms. */
const LIVE_SHARE_MS = 800;
/** Stream counts for the metrics are read at most this often, ms. */
const PIPELINE_CACHE_MS = 1000;

export class NodeOps implements NodeHttpApp {
  readonly node: string;
  readonly admin: NodeAdmin;
  readonly streams: SseHub;
  readonly #metrics: NodeMetrics;
  #turn = 0;
  /** Shared by every console watching this node: one status read per LIVE_SHARE_MS, however many watch. */
  readonly live = sharedFor(LIVE_SHARE_MS, () => this.#readLive());
  readonly #pipelineCounts = sharedFor(PIPELINE_CACHE_MS, () => this.#readPipelineCounts());
  readonly #endpoints = sharedFor(PIPELINE_CACHE_MS, () => this.#readEndpoints());

  constructor(
    private readonly supervisor: Supervisor,
    private readonly config: HeraldConfig,
    log: Logger,
  ) {
    this.node = supervisor.nodeName;
    this.admin = new NodeAdmin(() => supervisor.connection(), config);
    this.streams = new SseHub(() => supervisor.connection(), config, log.child("sse"));
    this.#metrics = new NodeMetrics({
      node: this.node,
      cluster: config.cluster,
      version: heraldVersion(),
      isMaster: () => supervisor.isMaster(),
      masterEpoch: () => supervisor.masterHolder()?.epoch ?? null,
      actors: () => supervisor.actorHosts().map((h) => h.summary()),
      actorMetrics: () => mergeSnapshotsOf(supervisor),
      heartbeatAgeSeconds: () => (supervisor.heartbeatAgeMs() ?? 0) / 1000,
      natsReconnects: () => supervisor.natsReconnects(),
      sse: () => ({ clients: this.streams.clients, events: this.streams.events }),
      endpoints: () => this.#endpoints(),
      pipeline: () => this.#pipelineCounts(),
    });
  }

  async submit(body: Uint8Array): Promise<SubmitReply> {
    const ingest = this.supervisor.actorHosts().filter((h) => h.kind === "ingest" && h.running);
    if (ingest.length === 0) {
      const configured = this.config.nodes.find((n) => n.name === this.node)?.actors.ingest ?? 0;
      const why = configured === 0 ? `node ${this.node} runs no ingest actor (nodes[].actors.ingest is 0)` : `no ingest actor of node ${this.node} is running now`;
      return { ok: false, error: `${why}: submit on another node, or over NATS (herald.submit)`, reason: "unavailable" };
    }
    const host = ingest[this.#turn++ % ingest.length]!;
    try {
      return (await host.request(body, SUBMIT_TIMEOUT_MS)) as SubmitReply;
    } catch (err) {
      return { ok: false, error: `the ingest actor did not answer: ${errorText(err)}`, reason: "unavailable" };
    }
  }

  async status(): Promise<unknown> {
    const nc = this.supervisor.connection();
    if (!nc) throw new Error("not connected to NATS yet");
    return gatherStatus(nc, this.config);
  }

  async #readLive(): Promise<unknown> {
    const [status, snapshot] = await Promise.all([this.status(), mergeSnapshotsOf(this.supervisor)]);
    // What the console's charts draw: deliveries and their stored-to-pushed latency, per topic.
    const topics: Record<string, { delivered: number; latencySum: number; latencyCount: number }> = {};
    const of = (t: string) => (topics[t] ??= { delivered: 0, latencySum: 0, latencyCount: 0 });
    for (const x of snapshot.series) {
      const t = x.labels.topic;
      if (t === undefined) continue;
      if (x.name === "herald_messages_delivered_total") of(t).delivered += x.value;
      else if (x.name === "herald_stored_to_pushed_seconds") {
        of(t).latencySum += x.sum ?? 0;
        of(t).latencyCount += x.value;
      }
    }
    return { at: Date.now(), node: this.node, topicNames: Object.keys(this.config.topics), status, topics };
  }

  async metrics(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.#metrics.contentType, text: await this.#metrics.text() };
  }

  notLive(): string | undefined {
    const reason = this.supervisor.stoppingReason();
    return reason === undefined ? undefined : `the node is stopping (${reason})`;
  }

  readiness(): ReadyCheck[] {
    const s = this.supervisor;
    const stopping = s.stoppingReason();
    const age = s.heartbeatAgeMs();
    const { timeoutMs } = this.config.heartbeat;
    const notRunning = s.actorHosts().filter((h) => !h.running).map((h) => `${h.id} ${h.summary().state}`);
    const holder = s.masterHolder();
    const masterDetail = () => {
      if (!holder || holder.node === null) return { ok: false, detail: "no node holds the master lease" };
      if (!s.judgedAlive(holder.node)) return { ok: false, detail: `the lease names ${holder.node} (epoch ${holder.epoch}), which is not alive` };
      return { ok: true, detail: `${holder.node} at epoch ${holder.epoch}` };
    };
    return [
      { name: "running", ok: stopping === undefined, detail: stopping === undefined ? "the node is running" : `the node is stopping (${stopping})` },
      { name: "nats", ok: s.natsConnected(), detail: s.natsConnected() ? "connected" : s.connection() ? "disconnected, reconnecting" : "not connected yet" },
      {
        name: "heartbeat",
        ok: age !== undefined && age < timeoutMs,
        detail: age === undefined ? "no registry record written yet" : `last written ${(age / 1000).toFixed(1)} s ago (dead after ${timeoutMs / 1000} s)`,
      },
      {
        name: "actors",
        ok: s.actorHosts().length > 0 && notRunning.length === 0,
        detail: s.actorHosts().length === 0 ? "not started yet" : notRunning.length === 0 ? `${s.actorHosts().length} running` : `not running: ${notRunning.join(", ")}`,
      },
      { name: "master", ...masterDetail() },
    ];
  }

  /** Every breaker the config defines (closed unless the bucket says otherwise), with its state. */
  async #readEndpoints(): Promise<{ endpoint: string; state: string }[] | undefined> {
    const nc = this.supervisor.connection();
    if (!nc || !Object.values(this.config.topics).some((t) => t.breaker)) return [];
    try {
      const records = await listEndpoints(await bindBucket(nc, names(this.config.subjectPrefix).endpointsBucket));
      return breakerStates(records, this.config.topics).map(({ endpoint, state }) => ({ endpoint, state }));
    } catch {
      return undefined;
    }
  }

  #readPipelineCounts(): Promise<{ queue: number; exceptions: number; dead: number; scheduled: number } | undefined> {
    const nc = this.supervisor.connection();
    if (!nc) return Promise.resolve(undefined);
    return pipelineCounts(nc, this.config.subjectPrefix).then(
      (c) => ({ queue: c.queue.pending, exceptions: c.exceptions.retrying, dead: c.exceptions.dead, scheduled: c.scheduled.pending }),
      () => undefined,
    );
  }

}

/** Every count the node's actors have made so far. */
async function mergeSnapshotsOf(supervisor: Supervisor) {
  return mergeSnapshots(await Promise.all(supervisor.actorHosts().map((h) => h.metrics())));
}

/** `read`, shared: callers within `ms` of the last read get its answer instead of a new read. */
function sharedFor<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at > ms) last = { at: now, value: read() };
    return last.value;
  };
}
