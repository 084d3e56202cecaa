/**
 * Herald end to end: messages published with JetStream acks on `herald.in.bench`, pushed by the
 * `nats` channel to a subscriber or by the `webhook` channel to a loopback HTTP server; latency
 * from `createdAt` (when the queue stored the message) to arrival at the sink.
 */
import { jetstream } from "@nats-io/jetstream";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Progress } from "../../runtime/cli/progress.js";
import { LocalCluster, waitFor } from "../../runtime/testing/index.js";
import { cpuWindow, peakRssMiB, percentiles, publishAtRate, publishFullSpeed } from "./stats.js";
import type { ThroughputResult } from "./raw.js";

/** The example config's actors per node and its topic's template. */
export const EXAMPLE_ACTORS = { ingest: 1, collector: 1, subqueue: 1, processor: 1, pusher: 1 };
export const EXAMPLE_TEMPLATE = { title: "Hello {{name}}", body: "Welcome, {{name}}." };

export interface HeraldScenario {
  nodes: number;
  channel: "nats" | "webhook";
  count: number;
  /** JetStream publish acks in flight at full speed. */
  inflight: number;
  /** Fixed offered load in msgs/s; absent: full speed. */
  rate?: number;
  /** `pipeline.maxInFlight` override. */
  maxInFlight?: number;
  /** Another build's CLI (`<dir>/dist/runtime/cli/main.js`) to run instead of this one. */
  cli?: string;
}

/** How often the scenarios scrape each node's /metrics while they run, ms (Prometheus' default is 15 s). */
const SCRAPE_EVERY_MS = 1000;

export interface HeraldResult extends ThroughputResult {
  /** The last scrape of the first node's /metrics during the run: Herald's own series, Node.js defaults left out. */
  metrics?: string;
  /** Scrapes made during the run (every node, once a second). */
  scrapes?: number;
  /** Peak RSS of each node process (supervisor and all its actor threads), MiB. */
  peakRssMiB: Record<string, number | undefined>;
}

export interface Sink {
  url?: string;
  seen: Set<string>;
  latencies: number[];
  close(): Promise<void>;
}

function record(sink: Sink, body: { id: string; createdAt: number }): void {
  if (sink.seen.has(body.id)) return;
  sink.seen.add(body.id);
  sink.latencies.push(Date.now() - body.createdAt);
}

/** A loopback webhook receiver; `delayMs`: how long it takes to answer each request (a slow endpoint). */
export async function webhookSink(delayMs = 0): Promise<Sink> {
  const sink: Sink = { seen: new Set(), latencies: [], close: async () => undefined };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const answer = () => {
        record(sink, JSON.parse(body));
        res.writeHead(200).end();
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bench`;
  sink.close = () => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
  return sink;
}

export async function heraldEndToEnd(s: HeraldScenario): Promise<HeraldResult> {
  const hook = s.channel === "webhook" ? await webhookSink() : undefined;
  // The example's node (cluster.config.json): every actor kind once, and its topic's template.
  const channel = s.channel === "webhook" ? { channel: "webhook", url: hook!.url } : { channel: "nats" };
  const topic = { ...channel, template: EXAMPLE_TEMPLATE };
  const c = await LocalCluster.start({
    ...(s.cli === undefined ? {} : { cli: s.cli }),
    nodes: s.nodes,
    actors: EXAMPLE_ACTORS,
    // As the example runs: no fault drills (a drill header is looked for only when they are on).
    faultInjection: false,
    // Every node has its HTTP port, scraped for metrics once a second during the run.
    http: true,
    extra: {
      topics: { bench: topic },
      ...(s.maxInFlight ? { pipeline: { maxInFlight: s.maxInFlight } } : {}),
    },
  });
  const sink: Sink = hook ?? { seen: new Set(), latencies: [], close: async () => undefined };
  try {
    if (!hook) {
      c.nc.subscribe("herald.out.bench", { callback: (_e, m) => record(sink, m.json()) });
      await c.nc.flush();
    }
    c.startAll();
    await c.waitStatus(
      "nodes running",
      (st) => st.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")),
      60_000,
    );
    const js = jetstream(c.nc);
    const publish = (i: number) => js.publish("herald.in.bench", JSON.stringify({ id: `h${i}`, data: { name: `user ${i}` } }));
    // On a terminal: the count delivered, in place; piped: nothing.
    const line = new Progress();
    const progress = setInterval(() => line.update(`    ${sink.seen.size}/${s.count} delivered`), 250);
    const cpu = await cpuWindow({
      nats: c.nats.servers.map((sv) => sv.pid),
      herald: [...c.nodes.values()].flatMap((n) => (n.proc.pid === undefined ? [] : [n.proc.pid])),
    });
    const scraper = scrapeWhileRunning(c);
    const t0 = performance.now();
    if (s.rate) await publishAtRate(s.count, s.rate, publish);
    else await publishFullSpeed(s.count, s.inflight, publish);
    await waitFor(() => sink.seen.size >= s.count, { timeoutMs: 600_000, intervalMs: 20, what: "every message at the sink" });
    const secs = (performance.now() - t0) / 1000;
    const cpuUs = await cpu.end(s.count);
    const scraped = await scraper.stop();
    clearInterval(progress);
    line.done();
    const rss: Record<string, number | undefined> = {};
    for (const [name, n] of c.nodes) rss[name] = n.proc.pid === undefined ? undefined : await peakRssMiB(n.proc.pid);
    return { msgsPerSec: s.count / secs, ...percentiles(sink.latencies), peakRssMiB: rss, cpuUs, ...scraped };
  } finally {
    await c.stop();
    await sink.close();
  }
}

/** Scrapes every node's /metrics once a second until stopped; keeps the first node's last answer. */
function scrapeWhileRunning(c: LocalCluster): { stop(): Promise<{ metrics?: string; scrapes: number }> } {
  const urls = (c.config.nodes as { http?: { port: number } }[]).flatMap((n) => (n.http ? [`http://127.0.0.1:${n.http.port}/metrics`] : []));
  let scrapes = 0;
  let last: string | undefined;
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS));
      const texts = await Promise.all(urls.map((u) => fetch(u).then((r) => (r.ok ? r.text() : undefined), () => undefined)));
      scrapes += urls.length;
      if (texts[0] !== undefined) last = texts[0];
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const own = last?.split("\n").filter((l) => /^herald_/.test(l) && !/^herald_(process|nodejs)_/.test(l) && !/_bucket\{/.test(l)).join("\n");
      return { ...(own ? { metrics: own } : {}), scrapes };
    },
  };
}
