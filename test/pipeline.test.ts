/**
 * The message pipeline end to end: real nats-server, real node processes, a real webhook server
 * on loopback, the real CLI. A message goes in by every ingest path and comes out pushed,
 * rendered, signed, in the order the rules ask, retried or dead-lettered as its channel answers.
 */
import { jetstream } from "@nats-io/jetstream";
import type { Msg } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { verifyWebhook } from "../actors/pusher/channels/index.js";
import { decode, encode } from "../runtime/codec/index.js";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { spawn } from "node:child_process";
import { CLI, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { startWebhookServer, type WebhookServer } from "./helpers/webhook.js";

const SECRET = "whsec_" + Buffer.from("herald-test-secret-0123456789").toString("base64");

let cluster: TestCluster | undefined;
let hook: WebhookServer | undefined;

afterEach(async () => {
  await cluster?.stop();
  await hook?.close();
  cluster = undefined;
  hook = undefined;
});

const actorsOf = (s: ClusterStatus, kind: string) => s.nodes.flatMap((n) => n.actors.filter((a) => a.kind === kind));
const allRunning = (s: ClusterStatus) =>
  s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));

/** Collects what arrives on a NATS subject, by parsed JSON. */
function collect(c: TestCluster, subject: string): Record<string, any>[] {
  const got: Record<string, any>[] = [];
  c.nc.subscribe(subject, {
    callback: (_e, m: Msg) => {
      got.push(m.json());
    },
  });
  return got;
}

describe("message pipeline", () => {
  it("four nodes: NATS, herald.submit, HTTP and herald publish all arrive rendered at NATS and at a signed webhook", async () => {
    hook = await startWebhookServer();
    cluster = await TestCluster.start({
      nodes: 4,
      http: true,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        topics: {
          demo: { channel: "nats", template: { title: "Hello {{name}}", body: "Welcome, {{ name | upcase }}." } },
          hook: { channel: "webhook", url: hook.url, secret: SECRET, template: { title: "Hi {{name}}" } },
        },
      },
    });
    const c = cluster;
    const out = collect(c, "herald.out.demo");
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("4 nodes running their actors", (s) => s.nodes.length === 4 && allRunning(s), 30_000);
    const js = jetstream(c.nc);
    const sent: Record<string, string> = {};
    for (const topic of ["demo", "hook"]) {
      // 1. Any NATS client: a JetStream publish on herald.in.<topic> (acked = durable).
      const ack = await js.publish(`herald.in.${topic}`, JSON.stringify({ id: `${topic}-nats`, data: { name: "Nats" } }));
      expect(ack.duplicate).toBe(false);
      sent[`${topic}-nats`] = "Nats";
      // 2. The SOA interface: request/reply, answered once durable.
      const reply = (await c.nc.request("herald.submit", encode({ topic, data: { name: "Submit" } }), { timeout: 5000 })).data;
      const r = decode<{ ok: boolean; id: string }>(reply);
      expect(r.ok).toBe(true);
      sent[r.id] = "Submit";
      // 3. HTTP on a node's port.
      const port = (c.config.nodes[2] as { http: { port: number } }).http.port;
      const res = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ topic, to: "user-7", data: { name: "Http" } }),
      });
      expect(res.status).toBe(202);
      sent[((await res.json()) as { id: string }).id] = "Http";
      // 4. The CLI.
      const cli = await c.cli(["publish", topic, "--data", '{"name":"Cli"}', "-c", c.configFile]);
      expect(cli.code, cli.stderr).toBe(0);
      sent[cli.stdout.trim()] = "Cli";
    }
    await waitFor(() => out.length >= 4 && hook!.deliveries.length >= 4, { timeoutMs: 15_000, what: "8 pushes" });
    for (const m of out) {
      expect(m.topic).toBe("demo");
      expect(m.title).toBe(`Hello ${sent[m.id]}`);
      expect(m.body).toBe(`Welcome, ${sent[m.id]!.toUpperCase()}.`);
      expect(m.data).toEqual({ name: sent[m.id] });
    }
    expect(out.find((m) => sent[m.id] === "Http")!.to).toBe("user-7");
    for (const d of hook.deliveries) {
      expect(verifyWebhook(SECRET, d.headers, d.body)).toBe(true);
      expect(d.headers["webhook-id"]).toBe(d.json.id);
      expect(d.json.title).toBe(`Hi ${sent[d.json.id]}`);
    }
    // Every message exactly once, none lost.
    expect(new Set([...out.map((m) => m.id), ...hook.deliveries.map((d) => d.json.id)])).toEqual(new Set(Object.keys(sent)));
    // Work was shared: more than one node's pushers delivered.
    const s = await c.status();
    expect(s.nodes.filter((n) => n.actors.some((a) => a.kind === "pusher" && a.processed > 0)).length).toBeGreaterThan(1);
  });

  it("one sub-queue actor: paused, m1…m8 come out in the worked example's order for each fifo/lifo pair; rules change at runtime", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: { topics: { ord: { channel: "nats" } } },
    });
    const c = cluster;
    const out = collect(c, "herald.out.ord");
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("node running", allRunning, 30_000);
    const subqueue = async () => actorsOf(await c.status(), "subqueue")[0]!;
    const expected: Record<string, number[]> = {
      "fifo/fifo": [1, 2, 3, 4, 5, 6, 7, 8],
      "fifo/lifo": [7, 8, 4, 5, 6, 1, 2, 3],
      "lifo/fifo": [3, 2, 1, 6, 5, 4, 8, 7],
      "lifo/lifo": [8, 7, 6, 5, 4, 3, 2, 1],
    };
    const maxAgeMs = 300;
    for (const [pair, order] of Object.entries(expected)) {
      const [primary, secondary] = pair.split("/");
      const set = await c.cli(["rules", "set", "--topic", "ord", "--json", JSON.stringify({ primary, secondary, maxCount: 3, maxAgeMs }), "-c", c.configFile]);
      expect(set.code, set.stderr).toBe(0);
      const pause = await c.cli(["pause", "--topic", "ord", "-c", c.configFile]);
      expect(pause.code, pause.stderr).toBe(0);
      await waitFor(async () => (await subqueue()).gauges?.pauses === 1, { timeoutMs: 5000, what: "the pause to reach the actor" });
      const before = out.length;
      let lastAt = 0;
      for (let i = 1; i <= 8; i++) {
        const r = await c.nc.request("herald.submit", encode({ topic: "ord", id: `${primary}-${secondary}-m${i}`, data: { n: i } }), { timeout: 5000 });
        expect(decode(r.data)).toMatchObject({ ok: true });
        lastAt = Date.now();
      }
      // Held while paused: received and cut into sub-queues, nothing dispatched.
      await waitFor(async () => (await subqueue()).gauges?.held === 8, { timeoutMs: 5000, what: "8 held messages" });
      expect(out.length).toBe(before);
      // Past maxAgeMs, the partial sub-queue C=[m7,m8] is closed too.
      await waitFor(() => Date.now() > lastAt + maxAgeMs + 50, { timeoutMs: 5000, what: "maxAgeMs to pass" });
      const resume = await c.cli(["resume", "--topic", "ord", "-c", c.configFile]);
      expect(resume.code, resume.stderr).toBe(0);
      await waitFor(() => out.length >= before + 8, { timeoutMs: 10_000, what: `8 messages for ${pair}` });
      expect(out.slice(before).map((m) => m.data.n), `primary ${primary}, secondary ${secondary}`).toEqual(order);
    }
    // An invalid rule is refused with its reason, and the rule in force stays.
    const bad = await c.cli(["rules", "set", "--topic", "ord", "--json", '{"primary":"sideways"}', "-c", c.configFile]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/primary/);
    const got = await c.cli(["rules", "get", "--topic", "ord", "--json", "-c", c.configFile]);
    expect(JSON.parse(got.stdout)).toMatchObject({ primary: "lifo", secondary: "lifo", maxCount: 3 });
  });

  it("a webhook answering 503 twice then 200 gets the message on the third attempt; a 400 becomes a dead letter, replayed once fixed", async () => {
    let mode: "flaky" | "reject" | "ok" = "flaky";
    let flakyCalls = 0;
    hook = await startWebhookServer((_n, json) => {
      if (json.topic === "flaky" && mode === "flaky") return ++flakyCalls <= 2 ? 503 : 200;
      if (json.topic === "strict") return mode === "ok" ? 200 : 400;
      return 200;
    });
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { retry: { backoffMs: [100, 200], maxAttempts: 5 } },
        topics: {
          flaky: { channel: "webhook", url: hook.url, secret: SECRET },
          strict: { channel: "webhook", url: hook.url, secret: SECRET },
        },
      },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("node running", allRunning, 30_000);
    const pub = await c.cli(["publish", "flaky", "--data", '{"k":1}', "-c", c.configFile]);
    expect(pub.code, pub.stderr).toBe(0);
    const flakyId = pub.stdout.trim();
    await waitFor(() => hook!.deliveries.some((d) => d.json.id === flakyId && d.status === 200), { timeoutMs: 10_000, what: "the third attempt" });
    const attempts = hook.deliveries.filter((d) => d.json.id === flakyId);
    expect(attempts.map((d) => d.status)).toEqual([503, 503, 200]);
    // Each attempt carries the same id (receivers deduplicate on it) and a valid signature.
    for (const d of attempts) expect(verifyWebhook(SECRET, d.headers, d.body)).toBe(true);

    mode = "reject";
    const strict = await c.cli(["publish", "strict", "--data", '{"k":2}', "-c", c.configFile]);
    const strictId = strict.stdout.trim();
    const listed = await waitFor(
      async () => {
        const r = await c.cli(["dlq", "list", "--json", "-c", c.configFile]);
        const rows = JSON.parse(r.stdout) as { id: string; reason: string; error: string }[];
        return rows.find((x) => x.id === strictId);
      },
      { timeoutMs: 10_000, what: "the dead letter" },
    );
    expect(listed!.reason).toBe("rejected");
    expect(listed!.error).toMatch(/400/);
    // Permanent: pushed once, not retried.
    expect(hook.deliveries.filter((d) => d.json.id === strictId)).toHaveLength(1);
    const s = await c.status();
    expect(s.exceptions.dead).toBe(1);

    mode = "ok";
    const replay = await c.cli(["dlq", "replay", strictId, "-c", c.configFile]);
    expect(replay.code, replay.stderr).toBe(0);
    await waitFor(() => hook!.deliveries.some((d) => d.json.id === strictId && d.status === 200), { timeoutMs: 10_000, what: "the replayed push" });
    const after = await c.cli(["dlq", "list", "--json", "-c", c.configFile]);
    expect(JSON.parse(after.stdout)).toEqual([]);
  });

  it("bad input is refused with its reason or dead-lettered; the node keeps running and a valid message still arrives", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      http: true,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        limits: { maxPayloadBytes: 1024 },
        http: { maxBodyBytes: 4096 },
        topics: { demo: { channel: "nats", template: { title: "Hello {{name}}" } } },
      },
    });
    const c = cluster;
    const out = collect(c, "herald.out.demo");
    await c.nc.flush();
    c.startAll();
    await c.waitStatus("node running", allRunning, 30_000);
    const port = (c.config.nodes[0] as { http: { port: number } }).http.port;
    // Fire-and-forget junk on herald.in.*: each becomes a dead letter with its reason.
    const junk: [string, Uint8Array | string, RegExp][] = [
      ["herald.in.demo", "{ not json", /malformed JSON/],
      ["herald.in.demo", new Uint8Array([0xc1, 0xff, 0x00]), /msgpack/],
      ["herald.in.demo", JSON.stringify({ data: "a string" }), /"data" must be an object/],
      ["herald.in.demo", JSON.stringify({ data: { big: "x".repeat(5000) } }), /1024/],
      ["herald.in.nosuch", JSON.stringify({ data: {} }), /nosuch/],
      ["herald.in.demo", JSON.stringify({ data: {}, createdAt: 5 }), /createdAt/],
    ];
    for (const [subject, payload] of junk) c.nc.publish(subject, payload);
    const dead = await waitFor(
      async () => {
        const r = await c.cli(["dlq", "list", "--json", "-c", c.configFile]);
        const rows = JSON.parse(r.stdout) as { reason: string; error: string; topic: string }[];
        return rows.length >= junk.length ? rows : undefined;
      },
      { timeoutMs: 10_000, what: "a dead letter per junk input" },
    );
    // Each topic is read by its own consumer (and unknown ones by the master's sweeper), so the
    // letters need not come in publish order.
    for (const [subject, , reason] of junk) expect(dead!.some((d) => reason.test(d.error)), `${subject}: ${reason}`).toBe(true);
    expect(dead!.filter((d) => d.reason === "unknown-topic").map((d) => d.topic)).toEqual(["nosuch"]);
    expect(dead!.filter((d) => d.reason === "invalid")).toHaveLength(5);

    // Request/reply and HTTP refuse at once, with the reason.
    const refuse = async (body: unknown) =>
      decode<{ ok: boolean; error: string }>((await c.nc.request("herald.submit", encode(body), { timeout: 5000 })).data);
    expect(await refuse({ data: {} })).toMatchObject({ ok: false, error: expect.stringMatching(/topic/) });
    expect(await refuse({ topic: "demo", data: [1] })).toMatchObject({ ok: false, error: expect.stringMatching(/data/) });
    expect(await refuse({ topic: "nope", data: {} })).toMatchObject({ ok: false, error: expect.stringMatching(/nope/) });
    const raw = await c.nc.request("herald.submit", new Uint8Array([0xc1]), { timeout: 5000 });
    expect(raw.data.length).toBeGreaterThan(0);
    const post = (body: string, headers: Record<string, string> = { "content-type": "application/json" }) =>
      fetch(`http://127.0.0.1:${port}/v1/messages`, { method: "POST", headers, body });
    expect((await post("{oops")).status).toBe(400);
    expect((await post(JSON.stringify({ topic: "demo", data: { x: "y".repeat(5000) } }))).status).toBe(413);
    expect((await post(JSON.stringify({ topic: "nope", data: {} }))).status).toBe(404);
    expect((await post("{}", { "content-type": "text/plain" })).status).toBe(415);
    const cli = await c.cli(["publish", "demo", "--data", "[1,2]", "-c", c.configFile]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr.trim().split("\n")).toHaveLength(1);

    // Forged exception-queue entries (an internal subject, but any client can publish on it)
    // become dead letters too, instead of wedging the retry loop.
    const js = jetstream(c.nc);
    await js.publish("herald.exc.demo", encode(null));
    await js.publish("herald.exc.demo", encode({ envelope: {}, attempts: 1, nextAttemptAt: 0 }));
    await waitFor(
      async () => {
        const r = await c.cli(["dlq", "list", "--json", "-c", c.configFile]);
        const rows = JSON.parse(r.stdout) as { error: string }[];
        return rows.filter((x) => /malformed exception entry/.test(x.error)).length === 2;
      },
      { timeoutMs: 10_000, what: "two dead letters for the forged exception entries" },
    );

    // Still running: nothing restarted, and a valid message goes through (`herald watch` sees it).
    const watch = spawn(process.execPath, [CLI, "watch", "demo", "--count", "1", "-c", c.configFile], { stdio: ["ignore", "pipe", "pipe"] });
    let watched = "";
    let watchErr = "";
    watch.stdout.on("data", (d) => (watched += d));
    watch.stderr.on("data", (d) => (watchErr += d));
    const watchExit = new Promise<number | null>((r) => watch.on("exit", (code) => r(code)));
    await waitFor(() => watchErr.includes("watching herald.out.demo"), { timeoutMs: 10_000, what: "herald watch to subscribe" });
    const ok = await c.cli(["publish", "demo", "--data", '{"name":"Still here"}', "-c", c.configFile]);
    expect(ok.code, ok.stderr).toBe(0);
    await waitFor(() => out.find((m) => m.id === ok.stdout.trim()), { timeoutMs: 10_000, what: "the valid message" });
    expect(await waitFor(() => watchExit.then((code) => ({ code })), { timeoutMs: 10_000, what: "herald watch to exit" })).toEqual({ code: 0 });
    expect(JSON.parse(watched.trim())).toMatchObject({ id: ok.stdout.trim(), title: "Hello Still here" });
    const s = await c.status();
    expect(s.nodes[0]!.actors.every((a) => a.state === "running" && a.restarts === 0)).toBe(true);
  });
});
