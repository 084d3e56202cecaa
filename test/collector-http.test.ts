/**
 * The HTTP collector end to end: a real HTTP server on loopback pages messages by cursor. While it
 * answers 503, hangs past the timeout, sends a body over maxBodyBytes, redirects to another server
 * (never contacted: it would receive the collector's headers), or is gone (connection refused),
 * status shows the error and the collector backs off; once it is back, every message
 * arrives exactly once. Pages are followed until caught up; a message may name its own topic; an
 * invalid one becomes a dead letter without blocking the rest.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../runtime/nats/server.js";
import type { ClusterStatus, CollectorStatus } from "../runtime/supervisor/status.js";
import { countsBy, sink } from "./collector-helpers.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

type Mode = "ok" | "503" | "hang" | "huge" | "redirect";

/** A message feed: `GET /feed?cursor=N&limit=L` → `{ messages, cursor }`; cursors are strings. */
class Feed {
  readonly messages: Record<string, unknown>[] = [];
  mode: Mode = "ok";
  requests = 0;
  /** Where mode "redirect" sends the client. */
  redirectTo = "";
  private server: Server | undefined;
  constructor(readonly port: number) {}

  add(n: number, extra: (i: number) => Record<string, unknown> = () => ({})): void {
    for (let i = 0; i < n; i++) {
      const k = this.messages.length + 1;
      this.messages.push({ id: `m-${k}`, updatedAt: 1_700_000_000_000 + k, data: { n: k }, ...extra(k) });
    }
  }

  async open(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests++;
      if (this.mode === "hang") return; // never answers
      if (this.mode === "huge") {
        // Streamed without a Content-Length: refused once the bytes pass maxBodyBytes.
        res.writeHead(200, { "content-type": "application/json" });
        res.write(`{"messages":[],"padding":"`);
        for (let i = 0; i < 8; i++) res.write("x".repeat(1024));
        res.end(`"}`);
        return;
      }
      if (this.mode === "redirect") {
        res.writeHead(302, { location: `${this.redirectTo}?token=from-the-location` }).end();
        return;
      }
      if (this.mode === "503") {
        res.writeHead(503, { "content-type": "text/plain" }).end("maintenance");
        return;
      }
      if (req.headers.authorization !== "Bearer t0k") {
        res.writeHead(401).end("no token");
        return;
      }
      const url = new URL(req.url ?? "/", "http://x");
      const from = Number(url.searchParams.get("cursor") ?? "0");
      const limit = Number(url.searchParams.get("limit") ?? "100");
      const page = this.messages.slice(from, from + limit);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ messages: page, cursor: String(from + page.length) }));
    });
    await new Promise<void>((r) => this.server!.listen(this.port, "127.0.0.1", () => r()));
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }
}

let cluster: TestCluster | undefined;
let feed: Feed | undefined;
let elsewhere: Server | undefined;

afterEach(async () => {
  await cluster?.stop();
  await feed?.close();
  const e = elsewhere;
  if (e) await new Promise<void>((r) => e.close(() => r()));
  cluster = undefined;
  feed = undefined;
  elsewhere = undefined;
});

const col = (s: ClusterStatus): CollectorStatus => s.collectors[0]!;

describe("HTTP collector", () => {
  it("pages by cursor; a source that fails (503, timeout, oversize body, refused) for a while then recovers loses nothing", async () => {
    feed = new Feed(await freePort());
    const f = feed;
    f.add(4);
    f.add(1, () => ({ topic: "alerts" }));
    f.add(1, () => ({ priority: "high" })); // not a message field: a dead letter
    f.add(4);
    await f.open();
    // The target of the redirect: it must never see a request (it would carry the Authorization header).
    const redirected: string[] = [];
    const target = createServer((req, res) => {
      redirected.push(`${req.method} ${req.url} authorization=${req.headers.authorization}`);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ messages: [], cursor: null }));
    });
    elsewhere = target;
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
    f.redirectTo = `http://127.0.0.1:${(target.address() as AddressInfo).port}/elsewhere`;
    cluster = await TestCluster.start({
      nodes: 1,
      http: true,
      actors: { ingest: 0, collector: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { duplicateWindowMs: 600_000 },
        topics: { feed: { channel: "nats" }, alerts: { channel: "nats" } },
        collectors: [
          {
            name: "feed",
            kind: "http",
            url: `http://127.0.0.1:${f.port}/feed`,
            topic: "feed",
            limitParam: "limit",
            batchSize: 3,
            intervalMs: 200,
            timeoutMs: 300,
            maxBodyBytes: 4096,
            backoffMaxMs: 800,
            headers: { authorization: "Bearer t0k" },
          },
        ],
      },
    });
    const c = cluster;
    const out = sink(c.nc, "herald.out.feed");
    const alerts = sink(c.nc, "herald.out.alerts");
    await c.nc.flush();
    c.startAll();
    await waitFor(() => out.length >= 8 && alerts.length === 1, { timeoutMs: 30_000, what: "the first 9 messages over 4 pages" });
    expect(alerts[0]!.json.data).toEqual({ n: 5 });
    let s = await c.waitStatus("first collection done", (st) => col(st).collected === 10 && col(st).state === "ok");
    expect(col(s)).toMatchObject({ deadLettered: 1, caughtUp: true, newestUpdatedAt: new Date(1_700_000_000_010).toISOString() });

    // The source fails five ways while messages keep being written to it.
    const failing = async (mode: Mode | "down", pattern: RegExp) => {
      if (mode === "down") await f.close();
      else f.mode = mode;
      f.add(2);
      return c.waitStatus(`status showing the ${mode} failure`, (st) => col(st).state === "failing" && pattern.test(col(st).lastError ?? ""), 10_000);
    };
    s = await failing("503", /GET http:\/\/127\.0\.0\.1:\d+\/feed answered 503 Service Unavailable: maintenance/);
    expect(col(s).nextAttemptAt).not.toBeNull();
    await failing("hang", /no answer within timeoutMs = 300 ms/);
    await failing("huge", /answered with a body over maxBodyBytes = 4096 bytes/);
    s = await failing("redirect", /answered 302 Found, a redirect to http:\/\/127\.0\.0\.1:\d+\/elsewhere: redirects are not followed .*set url to the final address/);
    expect(col(s).lastError).not.toContain("from-the-location");
    expect(redirected).toEqual([]);
    s = await failing("down", /GET http:\/\/127\.0\.0\.1:\d+\/feed failed: .*ECONNREFUSED/);
    expect(col(s).consecutiveFailures).toBeGreaterThanOrEqual(3);
    const table = await c.cli(["status", "-c", c.configFile]);
    expect(table.stdout).toMatch(/^feed\s+http\s+failing\s+n1\s+.*ECONNREFUSED/m);

    // Back up: everything written meanwhile arrives, once.
    f.mode = "ok";
    await f.open();
    f.add(3);
    const total = f.messages.length;
    await waitFor(() => out.length + alerts.length >= total - 1, { timeoutMs: 15_000, what: `all ${total - 1} valid messages` });
    s = await c.waitStatus("recovered", (st) => col(st).state === "ok" && col(st).collected === total);
    expect(col(s)).toMatchObject({ consecutiveFailures: 0, deadLettered: 1, nextAttemptAt: null });
    expect(col(s).lastError).toMatch(/ECONNREFUSED/); // kept for the operator, with lastErrorAt
    const counts = countsBy([...out, ...alerts], "n");
    const expected = Array.from({ length: total }, (_, i) => String(i + 1)).filter((n) => n !== "6");
    expect([...counts.keys()].sort()).toEqual(expected.sort());
    expect([...counts.values()].every((v) => v === 1)).toBe(true);
    expect(c.nodeOutput("n1")).toMatch(/collection recovered .*collector=feed/);
    // The invalid message is a dead letter naming its problem.
    const dlq = await c.cli(["dlq", "list", "--json", "-c", c.configFile]);
    expect(dlq.code, dlq.stderr).toBe(0);
    expect(dlq.stdout).toMatch(/unknown field \\?"priority\\?"/);

    // The node's metrics count the collector's rows and failed collections, and its lag.
    const port = (c.config.nodes[0] as { http: { port: number } }).http.port;
    const series = async (name: string) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(new RegExp(`^${name}\\{collector="feed"\\} ([0-9.e+-]+)$`, "m").exec(text)?.[1]);
    };
    await waitFor(async () => (await series("herald_collector_rows_total")) === total - 1, { timeoutMs: 10_000, what: `herald_collector_rows_total ${total - 1}` });
    expect(await series("herald_collector_errors_total")).toBeGreaterThanOrEqual(5);
    const lag = await series("herald_collector_lag_seconds");
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(10);
  });
});
