/**
 * A node whose wall clock is off pushes as promptly as one whose clock is right. Nodes run under
 * Debian's `faketime` (wall clock offset, monotonic clock untouched), as on a host without NTP:
 * 5 s behind and 5 s ahead of the nats-server and of each other. Sub-queue windows are measured on
 * the node's monotonic clock; exception retry delays are kept by the JetStream server.
 */
import { jetstream } from "@nats-io/jetstream";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;
let server: Server | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Publish → push latency of `count` messages sent one at a time, ms, under the default rules. */
async function latencies(skew: string | undefined, count = 10): Promise<number[]> {
  cluster = await TestCluster.start({
    nodes: 1,
    actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
    extra: { topics: { demo: { channel: "nats" } } },
    ...(skew === undefined ? {} : { skew: { n1: skew } }),
  });
  const c = cluster;
  const arrived = new Map<string, number>();
  c.nc.subscribe("herald.out.demo", {
    callback: (_e, m) => {
      arrived.set(m.json<{ id: string }>().id, performance.now());
    },
  });
  await c.nc.flush();
  c.startAll();
  await c.waitStatus("the node running", allRunning, 30_000);
  const js = jetstream(c.nc);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = `m${i}`;
    const sent = performance.now();
    await js.publish("herald.in.demo", JSON.stringify({ id, data: {} }));
    await waitFor(() => arrived.has(id), { timeoutMs: 15_000, what: `message ${id}` });
    out.push(arrived.get(id)! - sent);
  }
  await c.stop();
  cluster = undefined;
  return out;
}

describe("clock skew", () => {
  it("a node 5 s behind or 5 s ahead of the server pushes as promptly as one without skew", async () => {
    const right = median(await latencies(undefined));
    const behind = median(await latencies("-5s"));
    const ahead = median(await latencies("+5s"));
    console.log(`publish → push p50 (default rules, maxAgeMs 100): no skew ${Math.round(right)} ms, 5 s behind ${Math.round(behind)} ms, 5 s ahead ${Math.round(ahead)} ms`);
    // The sub-queue window is 100 ms: every node pushes within a fraction of a second, skew or not.
    for (const p50 of [right, behind, ahead]) expect(p50).toBeLessThan(1000);
    expect(behind).toBeLessThan(right + 500);
    expect(ahead).toBeLessThan(right + 500);
  });

  it("a retry is due one backoff after the failure, whichever skewed node wrote the exception and whichever retries it", async () => {
    // Every message fails its first push and succeeds on its second; the test times the gap.
    const attempts = new Map<string, number[]>();
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const id = (JSON.parse(body) as { id: string }).id;
        const seen = attempts.get(id) ?? [];
        seen.push(performance.now());
        attempts.set(id, seen);
        res.writeHead(seen.length === 1 ? 503 : 200).end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    cluster = await TestCluster.start({
      nodes: 2,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      skew: { n1: "-5s", n2: "+5s" },
      extra: { topics: { hook: { channel: "webhook", url } }, pipeline: { retry: { backoffMs: [1000], maxAttempts: 3 } } },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("both nodes running", (s) => s.nodes.length === 2 && allRunning(s), 30_000);
    const js = jetstream(c.nc);
    const ids = Array.from({ length: 20 }, (_, i) => `r${i}`);
    for (const id of ids) await js.publish("herald.in.hook", JSON.stringify({ id, data: {} }));
    await waitFor(() => ids.every((id) => (attempts.get(id)?.length ?? 0) >= 2), { timeoutMs: 30_000, what: "every message retried" });
    const gaps = ids.map((id) => attempts.get(id)![1]! - attempts.get(id)![0]!);
    console.log(`retry gap with backoff 1000 ms across nodes 10 s apart: min ${Math.round(Math.min(...gaps))} ms, max ${Math.round(Math.max(...gaps))} ms`);
    // Both nodes wrote and retried (the consumers are shared), 10 s of skew between them.
    const s = await c.status();
    expect(s.nodes.filter((n) => n.actors.some((a) => a.kind === "pusher" && a.processed + a.failed > 0)).length).toBe(2);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(900);
      expect(gap).toBeLessThan(3000);
    }
  });
});
