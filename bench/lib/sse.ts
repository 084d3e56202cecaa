/**
 * The `sse` channel with many clients on one node: 1,000 EventSource-like clients (plain HTTP
 * streams from this process, one recipient each) connected to the node's /v1/subscribe, then
 * `count` messages published at full speed, each to one recipient, round robin. Throughput is
 * pushes shown to their client per second, from the first publish to the last event read;
 * latency is the message's createdAt (set at ingest) to the event read by its client.
 */
import { request, type IncomingMessage } from "node:http";
import { Agent } from "node:http";
import { jetstream } from "@nats-io/jetstream";
import { LocalCluster, waitFor } from "../../runtime/testing/index.js";
import { Progress } from "../../runtime/cli/progress.js";
import { EXAMPLE_ACTORS, EXAMPLE_TEMPLATE } from "./herald.js";
import type { ThroughputResult } from "./raw.js";
import { cpuWindow, log, peakRssMiB, percentiles, publishFullSpeed } from "./stats.js";

export interface SseResult extends ThroughputResult {
  clients: number;
  /** How long the clients took to connect (all streams open), ms. */
  connectMs: number;
  peakRssMiB: number | undefined;
}

export async function sseFanout(count: number, inflight: number, clients = 1000): Promise<SseResult> {
  const c = await LocalCluster.start({
    nodes: 1,
    actors: EXAMPLE_ACTORS,
    faultInjection: false,
    http: true,
    extra: { topics: { live: { channel: "sse", template: EXAMPLE_TEMPLATE } } },
  });
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const open: IncomingMessage[] = [];
  try {
    c.startAll();
    await c.waitStatus("node running", (st) => st.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")), 60_000);
    const port = (c.config.nodes[0] as { http: { port: number } }).http.port;
    const latencies: number[] = [];
    let shown = 0;
    const t0c = performance.now();
    // Connect in batches: a thousand at once would only measure the accept queue.
    for (let i = 0; i < clients; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, clients - i) }, (_, k) =>
          connectStream(agent, port, `r${i + k}`, (createdAt) => {
            shown++;
            latencies.push(Date.now() - createdAt);
          }).then((res) => open.push(res)),
        ),
      );
    }
    const connectMs = performance.now() - t0c;
    log(`  ${clients} clients connected in ${Math.round(connectMs)} ms; publishing ${count} messages…`);
    const js = jetstream(c.nc);
    const line = new Progress();
    const progress = setInterval(() => line.update(`    ${shown}/${count} shown`), 250);
    const node = [...c.nodes.values()][0]!;
    const cpu = await cpuWindow({ nats: c.nats.servers.map((s) => s.pid), herald: node.proc.pid === undefined ? [] : [node.proc.pid] });
    const t0 = performance.now();
    await publishFullSpeed(count, inflight, (i) => js.publish("herald.in.live", JSON.stringify({ id: `s${i}`, to: `r${i % clients}`, data: { name: `user ${i}` } })));
    await waitFor(() => shown >= count, { timeoutMs: 600_000, intervalMs: 20, what: "every push shown to its client" });
    const secs = (performance.now() - t0) / 1000;
    const cpuUs = await cpu.end(count);
    clearInterval(progress);
    line.done();
    const rss = node.proc.pid === undefined ? undefined : await peakRssMiB(node.proc.pid);
    return { msgsPerSec: count / secs, ...percentiles(latencies), clients, connectMs, peakRssMiB: rss, cpuUs };
  } finally {
    for (const res of open) res.destroy();
    agent.destroy();
    await c.stop();
  }
}

/** Opens recipient `to`'s stream; `onPush` gets each push's createdAt. Resolves once the stream is open. */
function connectStream(agent: Agent, port: number, to: string, onPush: (createdAt: number) => void): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: `/v1/subscribe/live?to=${to}`, agent }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`subscribe ${to}: HTTP ${res.statusCode}`));
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const data = block.indexOf("\ndata: ");
          if (data >= 0) onPush((JSON.parse(block.slice(data + 7)) as { createdAt: number }).createdAt);
        }
      });
      resolve(res);
    });
    req.on("error", reject);
    req.end();
  });
}
