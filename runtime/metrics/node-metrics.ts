/**
 * A node's Prometheus metrics (`GET /metrics`): prom-client's registry for what the supervisor
 * knows (process, master, actors, the queue) and, added up with it on every scrape, what its
 * actors counted (meter.ts). Every series is prefixed `herald_`.
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { METRICS, type MetricDef, type MetricSnapshot } from "./meter.js";

/** One actor as the node sees it. */
export interface ActorView {
  id: string;
  kind: string;
  state: string;
  restarts: number;
  gauges?: Record<string, number>;
}

/** What the node tells its metrics, read at scrape time. */
export interface NodeMetricsSource {
  node: string;
  cluster: string;
  version: string;
  isMaster(): boolean;
  /** The master lease's epoch as this node last read it; null when no master is known. */
  masterEpoch(): number | null;
  actors(): ActorView[];
  /** Every actor's counts so far, earlier incarnations included. */
  actorMetrics(): Promise<MetricSnapshot>;
  heartbeatAgeSeconds(): number;
  natsReconnects(): number;
  /** Every breaker's endpoint and state (cluster-wide); undefined when NATS cannot say now. */
  endpoints(): Promise<{ endpoint: string; state: string }[] | undefined>;
  /** The sse streams this node serves now, and the events it has written to them. */
  sse(): { clients: number; events: number };
  /** Messages in the pipeline's streams (cluster-wide); undefined when NATS cannot say now. */
  pipeline(): Promise<{ queue: number; exceptions: number; dead: number; scheduled: number } | undefined>;
}

/** Sub-queue gauges reported in actor stats, and the series each becomes. */
const ACTOR_GAUGES: Record<string, [string, string]> = {
  held: ["herald_subqueue_held", "Messages a sub-queue actor holds, received and not yet dispatched (queue and retries)."],
  inFlight: ["herald_subqueue_in_flight", "Messages a sub-queue actor has dispatched and not yet settled."],
  retrying: ["herald_subqueue_retrying", "Exception-queue entries a sub-queue actor holds or has in flight for retry."],
};

export class NodeMetrics {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  readonly #own = new Registry();
  readonly #source: NodeMetricsSource;

  constructor(source: NodeMetricsSource) {
    this.#source = source;
    const register = [this.#own];
    collectDefaultMetrics({ register: this.#own, prefix: "herald_" });
    new Gauge({
      name: "herald_node_info",
      help: "This node: its name, cluster and Herald version (always 1).",
      labelNames: ["node", "cluster", "version"],
      registers: register,
      collect() {
        this.reset();
        this.set({ node: source.node, cluster: source.cluster, version: source.version }, 1);
      },
    });
    new Gauge({
      name: "herald_is_master",
      help: "1 while this node holds the master duty, else 0.",
      registers: register,
      collect() {
        this.set(source.isMaster() ? 1 : 0);
      },
    });
    new Gauge({
      name: "herald_master_epoch",
      help: "The master lease's epoch as this node last read it (it grows by one at every takeover); absent when no master is known.",
      registers: register,
      collect() {
        this.reset();
        const epoch = source.masterEpoch();
        if (epoch !== null) this.set(epoch);
      },
    });
    new Gauge({
      name: "herald_heartbeat_age_seconds",
      help: "Seconds since this node last wrote its registry record.",
      registers: register,
      collect() {
        this.set(source.heartbeatAgeSeconds());
      },
    });
    new Gauge({
      name: "herald_actor_state",
      help: "Each actor of this node in its current state (1): starting, running, restarting, failed, stopping, stopped.",
      labelNames: ["actor", "kind", "state"],
      registers: register,
      collect() {
        this.reset();
        for (const a of source.actors()) this.set({ actor: a.id, kind: a.kind, state: a.state }, 1);
      },
    });
    new Counter({
      name: "herald_actor_restarts_total",
      help: "Times the supervisor restarted each actor's thread.",
      labelNames: ["actor", "kind"],
      registers: register,
      collect() {
        this.reset();
        for (const a of source.actors()) this.inc({ actor: a.id, kind: a.kind }, a.restarts);
      },
    });
    for (const [key, [name, help]] of Object.entries(ACTOR_GAUGES)) {
      new Gauge({
        name,
        help,
        labelNames: ["actor"],
        registers: register,
        collect() {
          this.reset();
          for (const a of source.actors()) if (a.gauges && key in a.gauges) this.set({ actor: a.id }, a.gauges[key]!);
        },
      });
    }
    const pipelineGauge = (name: string, help: string, pick: (p: { queue: number; exceptions: number; dead: number; scheduled: number }) => number) =>
      new Gauge({
        name,
        help,
        registers: register,
        async collect() {
          this.reset();
          const p = await source.pipeline();
          if (p) this.set(pick(p));
        },
      });
    pipelineGauge("herald_queue_pending", "Messages in the queue stream, cluster-wide (received, not yet settled).", (p) => p.queue);
    pipelineGauge("herald_exceptions_retrying", "Entries in the exception stream, cluster-wide (failed pushes waiting for their retry).", (p) => p.exceptions);
    pipelineGauge("herald_dead_letters", "Dead letters kept, cluster-wide.", (p) => p.dead);
    pipelineGauge("herald_scheduled_pending", "Scheduled messages not yet released, cluster-wide.", (p) => p.scheduled);
    new Gauge({
      name: "herald_endpoint_state",
      help: "Each endpoint with a circuit breaker in its current state (1), cluster-wide: closed, open, half-open, disabled.",
      labelNames: ["endpoint", "state"],
      registers: register,
      async collect() {
        this.reset();
        for (const e of (await source.endpoints()) ?? []) this.set({ endpoint: e.endpoint, state: e.state }, 1);
      },
    });
    new Gauge({
      name: "herald_sse_clients",
      help: "Clients connected to this node's /v1/subscribe streams.",
      registers: register,
      collect() {
        this.set(source.sse().clients);
      },
    });
    new Counter({
      name: "herald_sse_events_total",
      help: "Pushes this node wrote to /v1/subscribe streams (one per client shown).",
      registers: register,
      collect() {
        this.reset();
        this.inc(source.sse().events);
      },
    });
    new Counter({
      name: "herald_supervisor_nats_reconnects_total",
      help: "Times the supervisor's NATS connection reconnected.",
      registers: register,
      collect() {
        this.reset();
        this.inc(source.natsReconnects());
      },
    });
  }

  /** The Prometheus text of this node: its own series and its actors', added up. */
  async text(): Promise<string> {
    const [own, actors] = await Promise.all([this.#own.getMetricsAsJSON(), this.#source.actorMetrics()]);
    return AggregatorRegistry.aggregate([own, promJson(actors)] as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
  }
}

type PromValue = { value: number; labels: Record<string, string | number>; metricName?: string };
type PromMetric = { name: string; help: string; type: string; aggregator: "sum"; values: PromValue[] };

/** Actor snapshots in prom-client's JSON form, so its aggregator can print them beside its own. */
export function promJson(s: MetricSnapshot): PromMetric[] {
  const byName = new Map<string, PromMetric>();
  for (const x of s.series) {
    const def: MetricDef = METRICS[x.name];
    let m = byName.get(x.name);
    if (!m) {
      m = { name: x.name, help: def.help, type: def.kind, aggregator: "sum", values: [] };
      byName.set(x.name, m);
    }
    if (def.kind !== "histogram") {
      m.values.push({ value: x.value, labels: x.labels });
      continue;
    }
    let cumulative = 0;
    def.buckets!.forEach((le, i) => {
      cumulative += x.buckets?.[i] ?? 0;
      m.values.push({ value: cumulative, labels: { ...x.labels, le }, metricName: `${x.name}_bucket` });
    });
    m.values.push({ value: x.value, labels: { ...x.labels, le: "+Inf" }, metricName: `${x.name}_bucket` });
    m.values.push({ value: x.sum ?? 0, labels: x.labels, metricName: `${x.name}_sum` });
    m.values.push({ value: x.value, labels: x.labels, metricName: `${x.name}_count` });
  }
  return [...byName.values()];
}
