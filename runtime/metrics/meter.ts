/**
 * Metrics on the actor side: plain counters, gauges and histograms in the thread that counts
 * them, no dependency. The supervisor asks each actor for a {@link MetricSnapshot} with its pings
 * and on every scrape, adds them up with its own and serves Prometheus text (node-metrics.ts,
 * prom-client). Keeping prom-client out of the actor threads keeps their isolates small.
 *
 * Every series is declared in {@link METRICS}: its name, help, kind, label names and (histograms)
 * buckets, so both sides agree on one catalogue and label sets stay small (topics, channels,
 * outcomes, reasons: never a message id or recipient).
 */

export type MetricKind = "counter" | "gauge" | "histogram";

export interface MetricDef {
  kind: MetricKind;
  help: string;
  labels: readonly string[];
  /** Histograms: upper bounds of the buckets, in seconds. */
  buckets?: readonly number[];
}

/** Latency buckets, seconds: 1 ms to a minute. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Every series actors count. The supervisor's own (master, actors, queue) are in node-metrics.ts. */
export const METRICS = {
  herald_messages_received_total: {
    kind: "counter",
    help: "Messages a sub-queue actor took from the queue for the first time, by topic and how they were ingested (nats, submit, http, collector).",
    labels: ["topic", "source"],
  },
  herald_messages_delivered_total: { kind: "counter", help: "Messages pushed and acknowledged, by topic and channel.", labels: ["topic", "channel"] },
  herald_messages_retried_total: {
    kind: "counter",
    help: "Failed pushes written to the exception queue for a later retry, by topic and channel.",
    labels: ["topic", "channel"],
  },
  herald_messages_dead_lettered_total: {
    kind: "counter",
    help: "Messages that became dead letters, by topic and reason (invalid, unknown-topic, render, rejected, exhausted, poison, too-large).",
    labels: ["topic", "reason"],
  },
  herald_stored_to_pushed_seconds: {
    kind: "histogram",
    help: "From when the queue stored a message to when its push was settled as delivered, by topic.",
    labels: ["topic"],
    buckets: LATENCY_BUCKETS,
  },
  herald_pushes_total: {
    kind: "counter",
    help: "Pushes a pusher made, by topic, channel and outcome (delivered, nowhere: to no live address, retry, dead).",
    labels: ["topic", "channel", "outcome"],
  },
  herald_addresses_removed_total: {
    kind: "counter",
    help: "Addresses a provider reported dead (410, Unregistered, BadDeviceToken, UNREGISTERED) and the pusher removed from the recipients registry, by topic and channel.",
    labels: ["topic", "channel"],
  },
  herald_push_duration_seconds: {
    kind: "histogram",
    help: "How long one push took its channel (a publish confirmed, an HTTP request answered), by topic and channel.",
    labels: ["topic", "channel"],
    buckets: LATENCY_BUCKETS,
  },
  herald_ingest_requests_total: {
    kind: "counter",
    help: "Submissions an ingest actor answered (herald.submit, POST /v1/messages), by source and result (accepted, duplicate, or the refusal's reason).",
    labels: ["source", "result"],
  },
  herald_collector_rows_total: { kind: "counter", help: "Rows or records a collector queued, by collector.", labels: ["collector"] },
  herald_collector_errors_total: { kind: "counter", help: "Collections that failed, by collector.", labels: ["collector"] },
  herald_collector_lag_seconds: {
    kind: "gauge",
    help: "Seconds since a collector's last successful collection (0 before the first), by collector; only the master runs collectors.",
    labels: ["collector"],
  },
  herald_nats_reconnects_total: {
    kind: "counter",
    help: "Times a NATS connection of this node reconnected, by connection (supervisor, or the actor kind).",
    labels: ["connection"],
  },
} as const satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof METRICS;
type LabelsOf<N extends MetricName> = { [K in (typeof METRICS)[N]["labels"][number]]: string };
type NamesOf<K extends MetricKind> = { [N in MetricName]: (typeof METRICS)[N]["kind"] extends K ? N : never }[MetricName];

/** One series: its metric, its label values in the catalogue's order, and its value(s). */
export interface SeriesSnapshot {
  name: MetricName;
  labels: Record<string, string>;
  /** Counter or gauge value; for a histogram, the count of observations. */
  value: number;
  /** Histograms: observations per bucket (not cumulative), then the sum of what was observed. */
  buckets?: number[];
  sum?: number;
}

/** What an actor reports: every series it has counted since it started. Structured-clone safe. */
export interface MetricSnapshot {
  series: SeriesSnapshot[];
}

export const EMPTY_SNAPSHOT: MetricSnapshot = { series: [] };

/** A counter or gauge series, bound once so counting in a hot path is one addition. */
export interface Counter {
  add(n?: number): void;
}
export interface Gauge {
  set(v: number): void;
}
export interface Histogram {
  observe(seconds: number): void;
}

interface Cell {
  name: MetricName;
  labels: Record<string, string>;
  value: number;
  buckets?: number[];
  sum: number;
}

/** An actor's metrics. Bind a series once (`counter(...)`) and keep the handle where it is used. */
export class Meter {
  readonly #cells = new Map<string, Cell>();

  counter<N extends NamesOf<"counter">>(name: N, labels: LabelsOf<N>): Counter {
    const cell = this.#cell(name, labels);
    return { add: (n = 1) => void (cell.value += n) };
  }

  gauge<N extends NamesOf<"gauge">>(name: N, labels: LabelsOf<N>): Gauge {
    const cell = this.#cell(name, labels);
    return { set: (v) => void (cell.value = v) };
  }

  histogram<N extends NamesOf<"histogram">>(name: N, labels: LabelsOf<N>): Histogram {
    const bounds = (METRICS[name] as MetricDef).buckets!;
    const cell = this.#cell(name, labels);
    cell.buckets ??= new Array<number>(bounds.length + 1).fill(0);
    const buckets = cell.buckets;
    return {
      observe: (seconds) => {
        let i = 0;
        while (i < bounds.length && seconds > bounds[i]!) i++;
        buckets[i]!++;
        cell.value++;
        cell.sum += seconds;
      },
    };
  }

  snapshot(): MetricSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const c of this.#cells.values()) {
      series.push({ name: c.name, labels: { ...c.labels }, value: c.value, ...(c.buckets ? { buckets: [...c.buckets], sum: c.sum } : {}) });
    }
    return { series };
  }

  #cell(name: MetricName, labels: Record<string, string>): Cell {
    const key = seriesKey(name, labels);
    let cell = this.#cells.get(key);
    if (!cell) {
      cell = { name, labels: { ...labels }, value: 0, sum: 0 };
      this.#cells.set(key, cell);
    }
    return cell;
  }
}

/** A series' identity: its name and label values in the catalogue's label order. */
export function seriesKey(name: MetricName, labels: Record<string, string>): string {
  return `${name}\u0000${METRICS[name].labels.map((l) => labels[l] ?? "").join("\u0000")}`;
}

/**
 * Adds snapshots up, series by series: what a node reports for several actors, or for the
 * incarnations of one actor (a restarted thread starts counting from zero; its predecessors'
 * last counts are carried). Gauges add up too (they are per actor in the catalogue).
 */
export function mergeSnapshots(snapshots: readonly MetricSnapshot[]): MetricSnapshot {
  const merged = new Map<string, SeriesSnapshot>();
  for (const s of snapshots) {
    for (const x of s.series) {
      const key = seriesKey(x.name, x.labels);
      const have = merged.get(key);
      if (!have) {
        merged.set(key, { ...x, labels: { ...x.labels }, ...(x.buckets ? { buckets: [...x.buckets] } : {}) });
        continue;
      }
      have.value += x.value;
      if (x.buckets && have.buckets) {
        x.buckets.forEach((n, i) => (have.buckets![i] = (have.buckets![i] ?? 0) + n));
        have.sum = (have.sum ?? 0) + (x.sum ?? 0);
      }
    }
  }
  return { series: [...merged.values()] };
}

/** The counters and histograms of a snapshot (what carries over when an actor's thread is replaced). */
export function withoutGauges(s: MetricSnapshot): MetricSnapshot {
  return { series: s.series.filter((x) => METRICS[x.name].kind !== "gauge") };
}
