/**
 * Delivery control on real clusters: a cluster-wide rate limit kept by the master (four nodes
 * together respect it; changed at runtime with herald ratelimit), and circuit breakers per
 * endpoint (a webhook that fails opens its breaker, attempts stop growing but for one probe per
 * openMs, the events are published, and once it recovers everything held is delivered, none dead;
 * an operator disables and enables an endpoint).
 */
import type { Msg } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LocalCluster, waitFor } from "../runtime/testing/index.js";
import { TokenBuckets } from "../runtime/supervisor/rate-limiter.js";
import { allRunning } from "./helpers/cluster.js";
import { startWebhookServer, type WebhookServer } from "./helpers/webhook.js";


describe("token buckets (the master's side of a rate limit)", () => {
  test("a full bucket grants its burst at once, then refills at perSecond; a short grant says when to ask again", () => {
    let now = 0;
    const b = new TokenBuckets(() => now);
    const limit = { perSecond: 50, burst: 50 };
    expect(b.grant("t", { want: 64, ...limit })).toEqual({ granted: 50, waitMs: expect.any(Number) });
    expect(b.grant("t", { want: 10, ...limit }).granted).toBe(0);
    now += 100; // 5 tokens
    expect(b.grant("t", { want: 10, ...limit }).granted).toBe(5);
    now += 10_000; // refills to the burst, no more
    expect(b.grant("t", { want: 1000, ...limit }).granted).toBe(50);
    // One every 2 s: the wait is until the next token.
    const slow = b.grant("s", { want: 5, perSecond: 0.5, burst: 1 });
    expect(slow.granted).toBe(1);
    expect(b.grant("s", { want: 5, perSecond: 0.5, burst: 1 })).toEqual({ granted: 0, waitMs: 2000 });
  });

  test("over a long run the grants never exceed burst + perSecond × time", () => {
    let now = 0;
    const b = new TokenBuckets(() => now);
    let granted = 0;
    for (let i = 0; i < 10_000; i++) {
      now += Math.random() * 5;
      granted += b.grant("t", { want: 1 + Math.floor(Math.random() * 8), perSecond: 200, burst: 20 }).granted;
    }
    expect(granted).toBeLessThanOrEqual(20 + (200 * now) / 1000);
    expect(granted).toBeGreaterThan(0.9 * ((200 * now) / 1000));
  });
});

describe("a rate limit of 50/s on a topic served by four nodes", () => {
  let cluster: LocalCluster;
  const arrivals = new Map<string, number[]>();

  beforeAll(async () => {
    cluster = await LocalCluster.start({
      nodes: 4,
      intervalMs: 200,
      timeoutMs: 1000,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: { topics: { paced: { channel: "nats", rateLimit: { perSecond: 50 } }, free: { channel: "nats" } } },
    });
    for (const t of ["paced", "free"]) {
      cluster.nc.subscribe(`herald.out.${t}`, {
        callback: (_e, m: Msg) => {
          const id = (m.json() as { id: string }).id;
          arrivals.set(id, [...(arrivals.get(id) ?? []), performance.now()]);
        },
      });
    }
    await cluster.nc.flush();
    cluster.startAll();
    await cluster.waitStatus("four nodes running", (s) => s.nodes.length === 4 && allRunning(s), 60_000);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  test("1,000 messages take 20 s ± 10 %, each pushed once, none retried", async () => {
    const t0 = performance.now();
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => cluster.nc.request("herald.submit", JSON.stringify({ topic: "paced", id: `p${i + k}`, data: {} }), { timeout: 10_000 })));
    }
    const ids = () => [...arrivals.keys()].filter((id) => id.startsWith("p"));
    await waitFor(() => ids().length >= 1000, { timeoutMs: 40_000, intervalMs: 50, what: "1,000 paced pushes" });
    const last = Math.max(...ids().map((id) => arrivals.get(id)![0]!));
    const seconds = (last - t0) / 1000;
    // A burst of 50 at once, then 950 at 50/s: 19 s, within 20 s ± 10 %.
    expect(seconds).toBeGreaterThan(18);
    expect(seconds).toBeLessThan(22);
    expect(ids().every((id) => arrivals.get(id)!.length === 1)).toBe(true);
    const s = await cluster.status();
    expect([s.exceptions.retrying, s.exceptions.dead]).toEqual([0, 0]);
  }, 60_000);

  test("a limit set at runtime paces a topic within a second, and cleared, it goes at full speed", async () => {
    const set = await cluster.cli(["ratelimit", "set", "free", "--per-second", "10", "--burst", "1", "-c", cluster.configFile]);
    expect(set.stdout, set.stderr).toBe("topic free: at most 10 pushes per second cluster-wide, bursts of 1\n");
    const got = await cluster.cli(["ratelimit", "get", "free", "--json", "-c", cluster.configFile]);
    expect(JSON.parse(got.stdout)).toEqual({ topic: "free", rateLimit: { perSecond: 10, burst: 1 }, from: "bucket" });
    // Every node follows the rules bucket; give the watch a moment by waiting for one paced push.
    await cluster.nc.request("herald.submit", JSON.stringify({ topic: "free", id: "f-probe", data: {} }));
    await waitFor(() => arrivals.has("f-probe"), { timeoutMs: 10_000, what: "the first push after the limit was set" });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 30 }, (_, i) => cluster.nc.request("herald.submit", JSON.stringify({ topic: "free", id: `f${i}`, data: {} }))));
    await waitFor(() => Array.from({ length: 30 }, (_, i) => `f${i}`).every((id) => arrivals.has(id)), { timeoutMs: 20_000, intervalMs: 20, what: "30 pushes at 10/s" });
    const seconds = (Math.max(...Array.from({ length: 30 }, (_, i) => arrivals.get(`f${i}`)![0]!)) - t0) / 1000;
    expect(seconds).toBeGreaterThan(2.5);
    expect(seconds).toBeLessThan(4.5);

    expect((await cluster.cli(["ratelimit", "clear", "free", "-c", cluster.configFile])).stdout).toBe("topic free: no rate limit\n");
    await waitFor(async () => JSON.parse((await cluster.cli(["ratelimit", "get", "free", "--json", "-c", cluster.configFile])).stdout).rateLimit === null, { timeoutMs: 5000, what: "the limit cleared" });
    const bad = await cluster.cli(["ratelimit", "set", "free", "--per-second", "0", "-c", cluster.configFile]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("must be more than 0 pushes per second");
  }, 60_000);
});

describe("circuit breakers", () => {
  let cluster: LocalCluster;
  let hook: WebhookServer;
  let healthy = false;
  const events: { type: string; endpoint: string; state: string; node: string }[] = [];
  const delivered = () => new Set(hook.deliveries.filter((d) => d.status === 200).map((d) => String(d.json.id)));

  beforeAll(async () => {
    hook = await startWebhookServer(() => (healthy ? 200 : 503));
    cluster = await LocalCluster.start({
      nodes: 2,
      http: true,
      intervalMs: 200,
      timeoutMs: 1000,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 100 } },
        topics: {
          hook: { channel: "webhook", url: hook.url, breaker: { failureRate: 0.5, minRequests: 5, windowMs: 10_000, openMs: 1000 } },
          other: { channel: "nats" },
        },
      },
    });
    cluster.nc.subscribe("herald.events.endpoint.>", { callback: (_e, m) => void events.push(m.json()) });
    await cluster.nc.flush();
    cluster.startAll();
    await cluster.waitStatus("two nodes running", (s) => s.nodes.length === 2 && allRunning(s), 60_000);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
    await hook?.close();
  });

  test("a webhook failing 100 %: the breaker opens, attempts stop growing but for the probes, and after it recovers everything is delivered, none dead", async () => {
    for (let i = 0; i < 30; i++) await cluster.nc.request("herald.submit", JSON.stringify({ topic: "hook", id: `h${i}`, data: { i } }));
    await waitFor(() => events.some((e) => e.type === "endpoint.open"), { timeoutMs: 20_000, what: "the breaker's open event" });
    const opened = events.find((e) => e.type === "endpoint.open")!;
    const u = new URL(hook.url);
    expect(opened).toMatchObject({ state: "open", endpoint: `${u.origin}${u.pathname}` });
    expect(cluster.nodeOutput("n1") + cluster.nodeOutput("n2")).toContain("endpoint open");

    // Open: one probe per openMs (each answered 503, so it opens again) and nothing else.
    const before = hook.deliveries.length;
    const probesBefore = events.filter((e) => e.type === "endpoint.half-open").length;
    await waitFor(() => events.filter((e) => e.type === "endpoint.half-open").length >= probesBefore + 3, { timeoutMs: 15_000, what: "three probes" });
    const probes = events.filter((e) => e.type === "endpoint.half-open").length - probesBefore;
    // Pushes already in flight when it opened may land too: a few, never the 30 messages' retries.
    expect(hook.deliveries.length - before).toBeLessThanOrEqual(probes + 4);

    const listed = JSON.parse((await cluster.cli(["endpoints", "list", "--json", "-c", cluster.configFile])).stdout) as { state: string; topics: string[] }[];
    expect(listed).toEqual([expect.objectContaining({ topics: ["hook"], state: expect.stringMatching(/^(open|half-open)$/) })]);
    const status = JSON.parse((await cluster.cli(["status", "--json", "-c", cluster.configFile])).stdout);
    expect(status.endpoints).toEqual([expect.objectContaining({ topics: ["hook"] })]);
    const port = (cluster.config.nodes[1] as { http: { port: number } }).http.port;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`herald_endpoint_state\\{endpoint="${u.origin}${u.pathname}",state="(open|half-open)"\\} 1`));

    healthy = true;
    await waitFor(() => events.some((e) => e.type === "endpoint.closed"), { timeoutMs: 15_000, what: "the breaker closing after a good probe" });
    await waitFor(() => delivered().size === 30, { timeoutMs: 30_000, what: "every held message delivered" });
    const s = await cluster.status();
    expect(s.exceptions.dead).toBe(0);
    expect(s.endpoints).toBeUndefined();
  }, 120_000);

  test("an operator disables an endpoint (its messages are held) and enables it (they are pushed)", async () => {
    const off = await cluster.cli(["endpoints", "disable", "hook", "-c", cluster.configFile]);
    expect(off.stdout, off.stderr).toContain("disabled: its messages are held until herald endpoints enable");
    await waitFor(() => events.some((e) => e.type === "endpoint.disabled"), { timeoutMs: 5000, what: "the disabled event" });
    const n = hook.deliveries.length;
    for (let i = 0; i < 5; i++) await cluster.nc.request("herald.submit", JSON.stringify({ topic: "hook", id: `d${i}`, data: { i } }));
    // Pushed had they not been held: a message of another topic, published after them, arrives.
    let otherArrived = false;
    cluster.nc.subscribe("herald.out.other", { max: 1, callback: () => void (otherArrived = true) });
    await cluster.nc.request("herald.submit", JSON.stringify({ topic: "other", data: {} }));
    await waitFor(() => otherArrived, { timeoutMs: 10_000, what: "a push of another topic" });
    expect(hook.deliveries.length).toBe(n);
    const on = await cluster.cli(["endpoints", "enable", "hook", "-c", cluster.configFile]);
    expect(on.stdout).toContain("enabled (breaker closed)");
    await waitFor(() => ["d0", "d1", "d2", "d3", "d4"].every((id) => delivered().has(id)), { timeoutMs: 15_000, what: "the held messages after enable" });
    const unknown = await cluster.cli(["endpoints", "enable", "nope", "-c", cluster.configFile]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no endpoint or topic "nope"');
  }, 60_000);
});
