/**
 * A node's HTTP port beyond ingest: /metrics scraped by a real Prometheus server and checked with
 * PromQL (and its text linted by promtool), /livez and /readyz through a NATS outage, /v1/status,
 * the bearer token, and /openapi.json against what the server answers.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startWebhookServer, type WebhookServer } from "./helpers/webhook.js";
import { freePort } from "../runtime/nats/server.js";
import { CLI, LocalCluster, waitFor } from "../runtime/testing/index.js";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const TOKEN = "metrics-test-token";

const running = (c: LocalCluster) => c.waitStatus("the node running", (s) => s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running")), 30_000);

async function get(url: string, token?: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

async function post(url: string, body: unknown, token = TOKEN): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A real Prometheus scraping `target` every second, with the bearer token; query() runs PromQL. */
async function startPrometheus(target: string): Promise<{ query(q: string): Promise<number[]>; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "herald-prom-"));
  const port = await freePort();
  await writeFile(
    path.join(dir, "prometheus.yml"),
    [
      "global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }",
      "scrape_configs:",
      "  - job_name: herald",
      `    authorization: { credentials: ${TOKEN} }`,
      `    static_configs: [{ targets: ["${target}"] }]`,
      "",
    ].join("\n"),
  );
  const proc: ChildProcess = spawn(PROMETHEUS, [`--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr = (stderr + String(d)).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/-/ready`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, intervalMs: 200, what: `Prometheus ready (${stderr.slice(-300)})` });
  return {
    async query(q: string) {
      const res = (await (await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: { value: [number, string] }[] } };
      return res.data.result.map((r) => Number(r.value[1]));
    },
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once("exit", r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("a node's HTTP port: metrics, health, status, API document", () => {
  let cluster: LocalCluster;
  let hook: WebhookServer;
  let base: string;
  /** The webhook refuses (400) until a test lets it accept. */
  let hookAccepts = false;
  /** Ids of the pushes the receiver accepted. */
  const accepted = () => hook.deliveries.filter((d) => d.status === 200).map((d) => String(d.json.id));

  beforeAll(async () => {
    expect(existsSync(PROMETHEUS), `${PROMETHEUS} missing: apt-get install prometheus (the metrics test scrapes with a real Prometheus)`).toBe(true);
    // It refuses with 400 (its messages become dead letters, reason rejected) until a test lets it accept.
    hook = await startWebhookServer(() => (hookAccepts ? 200 : 400));
    cluster = await LocalCluster.start({
      nodes: 1,
      http: true,
      faultInjection: true,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        http: { token: TOKEN },
        topics: {
          demo: { channel: "nats", template: { title: "Hello {{name}}" } },
          hook: { channel: "webhook", url: hook.url },
        },
      },
    });
    cluster.startAll();
    await running(cluster);
    base = `http://127.0.0.1:${(cluster.config.nodes[0] as { http: { port: number } }).http.port}`;
  });

  afterAll(async () => {
    await cluster?.stop();
    await hook?.close();
  });

  test("pushes are counted, and a real Prometheus scrapes and queries them; promtool finds nothing wrong with the text", async () => {
    for (let i = 0; i < 20; i++) expect((await post(`${base}/v1/messages`, { topic: "demo", data: { name: `u${i}` } })).status).toBe(202);
    for (let i = 0; i < 5; i++) expect((await post(`${base}/v1/messages`, { topic: "hook", data: { i } })).status).toBe(202);
    expect((await post(`${base}/v1/messages`, { topic: "nope", data: {} })).status).toBe(404);
    const target = base.replace("http://", "");
    const prom = await startPrometheus(target);
    try {
      const one = async (q: string) => (await prom.query(q))[0];
      await waitFor(async () => (await one('herald_messages_delivered_total{topic="demo",channel="nats"}')) === 20, { timeoutMs: 30_000, intervalMs: 250, what: "20 deliveries of demo in Prometheus" });
      await waitFor(async () => (await one('herald_messages_dead_lettered_total{topic="hook",reason="rejected"}')) === 5, { timeoutMs: 30_000, intervalMs: 250, what: "5 rejected dead letters of hook in Prometheus" });
      expect(await one(`up{job="herald"}`)).toBe(1);
      expect(await one('herald_messages_received_total{topic="demo",source="http"}')).toBe(20);
      expect(await one('herald_ingest_requests_total{source="http",result="accepted"}')).toBe(25);
      expect(await one('herald_ingest_requests_total{source="http",result="unknown-topic"}')).toBe(1);
      expect(await one('herald_pushes_total{topic="demo",channel="nats",outcome="delivered"}')).toBe(20);
      expect(await one('herald_pushes_total{topic="hook",channel="webhook",outcome="dead"}')).toBe(5);
      expect(await one('herald_stored_to_pushed_seconds_count{topic="demo"}')).toBe(20);
      expect(await one('herald_push_duration_seconds_count{topic="demo",channel="nats"}')).toBe(20);
      expect(await one("herald_is_master")).toBe(1);
      expect(await one("herald_master_epoch")).toBeGreaterThanOrEqual(1);
      expect(await one('count(herald_actor_state{state="running"})')).toBe(4);
      // The stream counts are read at most once a second: the gauge may trail the counters by a scrape.
      await waitFor(async () => (await one("herald_dead_letters")) === 5, { timeoutMs: 10_000, intervalMs: 250, what: "herald_dead_letters 5" });
      expect(await one("herald_process_resident_memory_bytes")).toBeGreaterThan(0);
    } finally {
      await prom.stop();
    }
    const scraped = await get(`${base}/metrics`, TOKEN);
    expect(scraped.type).toContain("text/plain");
    // promtool's lint finds nothing in Herald's series; it does flag three of prom-client's default
    // Node.js gauges for their `_total` names (prom-client names them so).
    const lint = spawnSync(PROMTOOL, ["check", "metrics"], { input: scraped.text, encoding: "utf8" });
    const complaints = `${lint.stdout}${lint.stderr}`.split("\n").filter((l) => l.trim() !== "");
    const promClientDefaults = /^herald_nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    expect(complaints.filter((l) => !promClientDefaults.test(l)), "promtool check metrics").toEqual([]);
    // No per-message label: the scrape names topics, channels, outcomes and actors, never an id.
    expect(scraped.text).not.toMatch(/\bid="/);
  });

  test("counts survive an actor's restart: a crashed sub-queue actor's deliveries are still counted", async () => {
    const delivered = async () => Number(/^herald_messages_delivered_total\{topic="demo",channel="nats"\} (\d+)$/m.exec((await get(`${base}/metrics`, TOKEN)).text)?.[1]);
    const before = await delivered();
    expect(before).toBeGreaterThanOrEqual(20);
    const drill = await cluster.cli(["fault", "crash-actor", "--node", "n1", "--actor", "subqueue-0", "-c", cluster.configFile]);
    expect(drill.code, drill.stderr).toBe(0);
    await cluster.waitStatus("subqueue-0 restarted", (s) => s.nodes[0]!.actors.some((a) => a.id === "subqueue-0" && a.restarts >= 1 && a.state === "running"), 30_000);
    expect(await delivered()).toBe(before);
    expect((await post(`${base}/v1/messages`, { topic: "demo", data: { name: "after" } })).status).toBe(202);
    await waitFor(async () => (await delivered()) === before + 1, { timeoutMs: 20_000, what: "the delivery after the restart counted on top" });
    expect((await get(`${base}/metrics`, TOKEN)).text).toMatch(/^herald_actor_restarts_total\{actor="subqueue-0",kind="subqueue"\} 1$/m);
  });

  test("the bearer token guards /v1 and /metrics; probes and the API document are open", async () => {
    for (const p of ["/metrics", "/v1/status"]) {
      expect((await get(`${base}${p}`)).status, p).toBe(401);
      expect((await get(`${base}${p}`, "wrong")).status, p).toBe(401);
      expect((await get(`${base}${p}`, TOKEN)).status, p).toBe(200);
    }
    expect((await post(`${base}/v1/messages`, { topic: "demo" }, "wrong")).status).toBe(401);
    for (const p of ["/livez", "/healthz", "/readyz", "/openapi.json"]) expect((await get(`${base}${p}`)).status, p).toBe(200);
  });

  test("/v1/status is the JSON of herald status --json", async () => {
    const viaHttp = JSON.parse((await get(`${base}/v1/status`, TOKEN)).text) as Record<string, any>;
    const viaCli = JSON.parse((await cluster.cli(["status", "--json", "-c", cluster.configFile])).stdout) as Record<string, any>;
    const shape = (s: Record<string, any>) => ({ cluster: s.cluster, master: s.master?.node, nodes: s.nodes.map((n: any) => [n.name, n.state, n.role, n.actors.map((a: any) => a.id)]), keys: Object.keys(s).sort() });
    expect(shape(viaHttp)).toEqual(shape(viaCli));
  });

  test("herald status --watch --json prints a status line per interval and ends with 0 on SIGINT", async () => {
    const child = spawn(process.execPath, [CLI, "status", "--watch", "--interval", "0.3", "--json", "-c", cluster.configFile], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d) => (out += String(d)));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await waitFor(() => out.split("\n").filter((l) => l.trim() !== "").length >= 2, { timeoutMs: 20_000, what: "two status lines" });
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    const lines = out.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as { at: string; nodes: { name: string }[] });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) {
      expect(l.nodes.map((n) => n.name)).toEqual(["n1"]);
      expect(Number.isNaN(Date.parse(l.at))).toBe(false);
    }
  });

  test("/openapi.json describes every route, and the statuses the server sends", async () => {
    const doc = JSON.parse((await get(`${base}/openapi.json`)).text) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    expect(doc.openapi).toBe("3.1.0");
    // Valid against the OpenAPI 3.1 schema (swagger-parser throws with every problem otherwise).
    await SwaggerParser.validate(structuredClone(doc) as never);
    const documented = (p: string, method: string, status: number) => Object.hasOwn(doc.paths[p]?.[method]?.responses ?? {}, String(status));
    const seen: [string, string, number][] = [
      ["/v1/messages", "post", (await post(`${base}/v1/messages`, { topic: "demo", data: {} })).status],
      ["/v1/messages", "post", (await post(`${base}/v1/messages`, { topic: "demo", data: [] })).status],
      ["/v1/messages", "post", (await post(`${base}/v1/messages`, { topic: "nope" })).status],
      ["/v1/messages", "post", (await post(`${base}/v1/messages`, {}, "wrong")).status],
      ["/v1/messages", "post", (await fetch(`${base}/v1/messages`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "x" })).status],
      ["/v1/status", "get", (await get(`${base}/v1/status`, TOKEN)).status],
      ["/metrics", "get", (await get(`${base}/metrics`, TOKEN)).status],
      ["/livez", "get", (await get(`${base}/livez`)).status],
      ["/healthz", "get", (await get(`${base}/healthz`)).status],
      ["/readyz", "get", (await get(`${base}/readyz`)).status],
      ["/openapi.json", "get", (await get(`${base}/openapi.json`)).status],
    ];
    expect(new Set(seen.map((s) => s[2]))).toEqual(new Set([202, 400, 404, 401, 415, 200]));
    // The operator's API is in the document too, path by path.
    for (const p of ["/", "/v1/events", "/v1/recipients/{id}", "/v1/dead-letters", "/v1/dead-letters/replay", "/v1/dead-letters/purge", "/v1/rules", "/v1/topics/{topic}/rules", "/v1/pause", "/v1/resume", "/v1/topics/{topic}/pause", "/v1/topics/{topic}/resume"]) {
      expect(doc.paths[p], p).toBeDefined();
    }
    for (const [p, m, status] of seen) expect(documented(p, m, status), `${m.toUpperCase()} ${p} answered ${status}, which the document does not list`).toBe(true);
    const res = await get(`${base}/no/such/thing`);
    expect(res.status).toBe(404);
    expect(res.text).toContain("openapi.json");
    expect((await fetch(`${base}/livez`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${base}/livez`, { method: "HEAD" })).status).toBe(200);
    // A malformed escape in the path or the query is a 404 or ignored, never a crash.
    expect((await get(`${base}/%E0%A4%A`)).status).toBe(404);
    expect((await get(`${base}/readyz?verbose=%ZZ`)).status).toBe(200);
  });

  test("the operator's API: dead letters listed, filtered, replayed and purged; rules refused with the CLI's words or merged; pause and resume", async () => {
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }) });
      return { status: res.status, json: (await res.json()) as any };
    };
    const listed = await call("GET", "/v1/dead-letters?topic=hook");
    expect(listed.status).toBe(200);
    expect(listed.json.total).toBe(5);
    expect(listed.json.letters.map((l: any) => l.reason)).toEqual(Array(5).fill("rejected"));
    const first = listed.json.letters[0].id as string;
    expect((await call("GET", `/v1/dead-letters?id=${first}`)).json.letters.map((l: any) => l.id)).toEqual([first]);
    expect((await call("GET", "/v1/dead-letters?reason=poison")).json).toEqual({ total: 0, letters: [] });
    expect((await call("GET", "/v1/dead-letters?limit=0")).status).toBe(400);
    expect((await fetch(`${base}/v1/dead-letters`)).status).toBe(401);

    // Replay one once the receiver accepts: it arrives, and its letter is gone.
    hookAccepts = true;
    const replayed = await call("POST", "/v1/dead-letters/replay", { ids: [first] });
    expect(replayed).toEqual({ status: 200, json: { replayed: [first], refused: [] } });
    await waitFor(() => accepted().includes(first), { timeoutMs: 20_000, what: "the replayed letter at the webhook" });
    expect((await call("GET", "/v1/dead-letters?topic=hook")).json.total).toBe(4);
    expect((await call("POST", "/v1/dead-letters/replay", { ids: ["no-such-letter"] })).status).toBe(404);
    expect((await call("POST", "/v1/dead-letters/replay", { ids: [] })).status).toBe(400);
    expect((await call("POST", "/v1/dead-letters/replay", "{not json")).status).toBe(400);
    expect((await call("POST", "/v1/dead-letters/purge", { all: true, topic: "hook", reason: "rejected" })).json).toEqual({ purged: 4 });
    // What is left is the openapi test's message that does not render (no name for Hello {{name}}).
    expect((await call("GET", "/v1/dead-letters")).json.letters.map((l: any) => [l.topic, l.reason])).toEqual([["demo", "render"]]);

    // Rules: an invalid patch is refused with the CLI's reason and changes nothing; a valid one merges.
    const before = (await call("GET", "/v1/topics/demo/rules")).json;
    const bad = await call("PUT", "/v1/topics/demo/rules", { primary: "sideways" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain("nothing was changed");
    const cli = await cluster.cli(["rules", "set", "--topic", "demo", "--json", '{"primary":"sideways"}', "-c", cluster.configFile]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain(bad.json.error.split("\n")[0]);
    expect((await call("GET", "/v1/topics/demo/rules")).json).toEqual(before);
    const good = await call("PUT", "/v1/topics/demo/rules", { maxCount: 7 });
    expect(good.status).toBe(200);
    expect(good.json.rule.maxCount).toBe(7);
    expect((await call("GET", "/v1/topics/demo/rules")).json).toMatchObject({ from: "topic", rule: { maxCount: 7 }, paused: null });
    expect((await call("GET", "/v1/topics/nope/rules")).status).toBe(404);

    expect((await call("POST", "/v1/topics/demo/pause")).json).toEqual({ paused: true, stillPaused: [] });
    expect((await call("GET", "/v1/topics/demo/rules")).json.paused.scope).toBe("topic");
    expect((await call("POST", "/v1/topics/demo/resume")).json).toEqual({ paused: false, stillPaused: [] });

    // The recipients registry.
    expect((await call("GET", "/v1/recipients/ada")).status).toBe(404);
    expect((await call("PUT", "/v1/recipients/ada", { email: ["Ada <ada@example.com>"] })).status).toBe(400);
    expect((await call("PUT", "/v1/recipients/ada", { sms: ["+1"] })).json.error).toContain('unknown field "sms" in the recipient');
    expect((await call("PUT", "/v1/recipients/bad..id", { email: [] })).status).toBe(400);
    expect(await call("PUT", "/v1/recipients/ada", { email: ["ada@example.com"] })).toEqual({ status: 200, json: { id: "ada", email: ["ada@example.com"] } });
    expect((await call("GET", "/v1/recipients/ada")).json).toEqual({ id: "ada", email: ["ada@example.com"] });
    expect((await call("DELETE", "/v1/recipients/ada")).json).toEqual({ removed: true });
    expect((await call("DELETE", "/v1/recipients/ada")).status).toBe(404);
    expect((await call("GET", "/v1/topics/demo/rules")).json.paused).toBeNull();
  });

  test("/readyz fails with the reason while NATS is down and recovers after; /livez stays 200", async () => {
    expect((await get(`${base}/readyz`)).text).toBe("ok\n");
    const verbose = await get(`${base}/readyz?verbose`);
    for (const check of ["running", "nats", "heartbeat", "actors", "master"]) expect(verbose.text).toContain(`[+]${check} ok`);
    await cluster.nats.server.stop();
    try {
      const down = await waitFor(async () => {
        const r = await get(`${base}/readyz?verbose`);
        return r.status === 503 ? r : undefined;
      }, { timeoutMs: 20_000, intervalMs: 200, what: "/readyz 503 while NATS is down" });
      expect(down!.text).toContain("[-]nats failed: disconnected, reconnecting");
      expect(down!.text).toContain("readyz check failed");
      expect((await get(`${base}/readyz`)).text).toMatch(/^not ready: .*nats: disconnected/);
      expect((await get(`${base}/livez`)).status).toBe(200);
    } finally {
      await cluster.nats.server.restart();
    }
    await waitFor(async () => (await get(`${base}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 250, what: "/readyz 200 again after NATS is back" });
    // Every connection of the node reconnected once, and the metrics say so.
    const reconnects = async (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m").exec((await get(`${base}/metrics`, TOKEN)).text)?.[1] ?? 0);
    await waitFor(async () => (await reconnects("herald_supervisor_nats_reconnects_total")) >= 1 && (await reconnects('herald_nats_reconnects_total{connection="subqueue"}')) >= 1, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: "the reconnects counted",
    });
  });
});
