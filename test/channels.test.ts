/**
 * The push channels against real receivers: a node:http server for webhooks (signatures verified
 * as a receiver would), a real nats-server for the NATS channel.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  createChannels,
  NatsChannel,
  pushPayload,
  signWebhook,
  verifyWebhook,
  WebhookChannel,
} from "../actors/pusher/channels/index.js";
import type { TopicConfig, WebhookTopicConfig } from "../runtime/config/schema.js";
import { freePort } from "../runtime/nats/server.js";
import { decideSettlement } from "../runtime/pipeline/settle.js";
import type { Envelope, Outcome, PushMessage } from "../runtime/pipeline/types.js";
import { startTestNats, waitFor } from "./helpers/nats.js";
import { names } from "../runtime/names.js";

const SECRET = "whsec_" + Buffer.from("a 32 byte key for the test suite").toString("base64");

const message = (over: Partial<PushMessage> = {}): PushMessage => ({
  id: "01HZX3J7Q8M6V3P4T5W6Y7Z8AB",
  topic: "demo",
  to: "user-7",
  createdAt: 1_700_000_000_000,
  rendered: { title: "Hello Ada", body: "You have 3 new messages" },
  data: { name: "Ada", count: 3 },
  ...over,
});

/** Every text an outcome carries, for "the secret never leaks" checks. */
const texts = (o: Outcome) => JSON.stringify(o);

describe("pushPayload", () => {
  it("flattens rendered fields, omits an absent `to`, and keeps identity fields over rendered ones", () => {
    expect(pushPayload(message())).toEqual({
      id: "01HZX3J7Q8M6V3P4T5W6Y7Z8AB",
      topic: "demo",
      to: "user-7",
      createdAt: 1_700_000_000_000,
      title: "Hello Ada",
      body: "You have 3 new messages",
      data: { name: "Ada", count: 3 },
    });
    const noTo = pushPayload(message({ to: undefined, rendered: { id: "spoof", data: "x", title: "t" } }));
    expect(noTo).not.toHaveProperty("to");
    expect(noTo).toMatchObject({ id: "01HZX3J7Q8M6V3P4T5W6Y7Z8AB", title: "t", data: { name: "Ada", count: 3 } });
    expect(Object.keys(noTo)).toEqual(["id", "topic", "createdAt", "title", "data"]);
  });
});

describe("Standard Webhooks signatures", () => {
  const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
  const ts = 1_674_087_231;
  const body = '{"type":"contact.created","data":{"id":1}}';

  it("matches an HMAC-SHA256 computed independently over id.timestamp.body", () => {
    const key = Buffer.from("a 32 byte key for the test suite");
    const expected = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
    expect(signWebhook(SECRET, id, ts, body)).toBe(`v1,${expected}`);
    // A secret without the whsec_ prefix is its own UTF-8 bytes.
    const raw = createHmac("sha256", Buffer.from("plain-secret-of-24-chars", "utf8")).update(`${id}.${ts}.${body}`).digest("base64");
    expect(signWebhook("plain-secret-of-24-chars", id, ts, body)).toBe(`v1,${raw}`);
  });

  it("verifies a good signature and refuses tampering, replays and other secrets", () => {
    const headers = { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": signWebhook(SECRET, id, ts, body) };
    expect(verifyWebhook(SECRET, headers, body, { nowSec: ts + 10 })).toBe(true);
    expect(verifyWebhook(SECRET, headers, body + " ", { nowSec: ts })).toBe(false);
    expect(verifyWebhook(SECRET, { ...headers, "webhook-id": "other" }, body, { nowSec: ts })).toBe(false);
    expect(verifyWebhook(SECRET, headers, body, { nowSec: ts + 301 })).toBe(false);
    expect(verifyWebhook(SECRET, headers, body, { nowSec: ts - 301 })).toBe(false);
    expect(verifyWebhook(SECRET, headers, body, { nowSec: ts + 1000, toleranceSec: 1000 })).toBe(true);
    expect(verifyWebhook("whsec_" + Buffer.from("another key, also 32 bytes long!").toString("base64"), headers, body, { nowSec: ts })).toBe(false);
    expect(verifyWebhook(SECRET, { ...headers, "webhook-signature": undefined }, body, { nowSec: ts })).toBe(false);
  });

  it("accepts any of several space-separated signatures, and header names in any case", () => {
    const good = signWebhook(SECRET, id, ts, body);
    const headers = { "Webhook-Id": id, "Webhook-Timestamp": String(ts), "Webhook-Signature": `v1,bm90IGl0 v2,xyz ${good}` };
    expect(verifyWebhook(SECRET, headers, body, { nowSec: ts })).toBe(true);
    expect(verifyWebhook(SECRET, { ...headers, "Webhook-Signature": "v1,bm90IGl0 v1g" }, body, { nowSec: ts })).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Webhooks against a real HTTP server

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function startReceiver(handler: Handler): Promise<{ url: string; received: Received[]; connections: () => number }> {
  const received: Received[] = [];
  let connections = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({ headers: req.headers, body });
      handler(req, body, res);
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/herald?token=query-token-1234`, received, connections: () => connections };
}

const webhookTopic = (url: string, over: Partial<WebhookTopicConfig> = {}): WebhookTopicConfig => ({
  channel: "webhook",
  url,
  secret: SECRET,
  timeoutMs: 5000,
  headers: { authorization: "Bearer header-token-5678" },
  ...over,
});

const reply =
  (status: number, body = "", headers: Record<string, string> = {}): Handler =>
  (_req, _body, res) => {
    res.writeHead(status, headers).end(body);
  };

describe("WebhookChannel", () => {
  // One channel for the whole block, as a pusher holds one; close() is tested on its own.
  const channel = new WebhookChannel();

  it("POSTs the JSON payload signed with Standard Webhooks headers; 200 → delivered", async () => {
    const r = await startReceiver(reply(200, "ok"));
    const outcome = await channel.push(message(), webhookTopic(r.url));
    expect(outcome).toMatchObject({ outcome: "delivered" });
    expect(r.received).toHaveLength(1);
    const { headers, body } = r.received[0]!;
    expect(JSON.parse(body)).toEqual(pushPayload(message()));
    expect(headers["content-type"]).toBe("application/json");
    expect(headers["authorization"]).toBe("Bearer header-token-5678");
    expect(headers["webhook-id"]).toBe(message().id);
    expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(5);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(verifyWebhook(SECRET, headers, body)).toBe(true);
    expect(verifyWebhook(SECRET, headers, body.replace("Ada", "Bob"))).toBe(false);
  });

  it("sends no signature without a secret", async () => {
    const r = await startReceiver(reply(204));
    const outcome = await channel.push(message(), webhookTopic(r.url, { secret: undefined }));
    expect(outcome.outcome).toBe("delivered");
    expect(r.received[0]!.headers["webhook-signature"]).toBeUndefined();
    expect(r.received[0]!.headers["webhook-id"]).toBe(message().id);
  });

  it("503 and 408 → retry; 429 with Retry-After seconds → retryAfterMs", async () => {
    const r503 = await startReceiver(reply(503, "down for maintenance"));
    const o503 = await channel.push(message(), webhookTopic(r503.url));
    expect(o503).toMatchObject({ outcome: "retry" });
    expect(o503).not.toHaveProperty("retryAfterMs");
    expect((o503 as { reason: string }).reason).toContain("webhook answered 503 Service Unavailable");
    expect((o503 as { reason: string }).reason).toContain("down for maintenance");

    const r408 = await startReceiver(reply(408));
    expect(await channel.push(message(), webhookTopic(r408.url))).toMatchObject({ outcome: "retry" });

    const r429 = await startReceiver(reply(429, "slow down", { "retry-after": "2" }));
    expect(await channel.push(message(), webhookTopic(r429.url))).toMatchObject({ outcome: "retry", retryAfterMs: 2000 });

    const rHuge = await startReceiver(reply(503, "", { "retry-after": "999999" }));
    expect(await channel.push(message(), webhookTopic(rHuge.url))).toMatchObject({ outcome: "retry", retryAfterMs: 3_600_000 });
  });

  it("reads Retry-After as an HTTP-date against the channel's clock", async () => {
    const nowMs = Math.floor(Date.now() / 1000) * 1000; // HTTP-dates have whole seconds
    const clocked = new WebhookChannel({ now: () => nowMs });
    const r = await startReceiver(reply(503, "", { "retry-after": new Date(nowMs + 90_000).toUTCString() }));
    expect(await clocked.push(message(), webhookTopic(r.url))).toMatchObject({ outcome: "retry", retryAfterMs: 90_000 });
    const past = await startReceiver(reply(429, "", { "retry-after": new Date(nowMs - 90_000).toUTCString() }));
    expect(await clocked.push(message(), webhookTopic(past.url))).toMatchObject({ outcome: "retry", retryAfterMs: 0 });
  });

  it("400 → dead/rejected quoting the start of the body; 302 → dead (redirects are not followed)", async () => {
    const long = `invalid payload: ${"x".repeat(500)}`;
    const r400 = await startReceiver(reply(400, long));
    const o400 = await channel.push(message(), webhookTopic(r400.url));
    expect(o400).toMatchObject({ outcome: "dead", reason: "rejected" });
    const error = (o400 as { error: string }).error;
    expect(error).toMatch(/^webhook answered 400 Bad Request to POST http:\/\/127\.0\.0\.1:\d+\/hooks\/herald: invalid payload: x+…$/);
    expect(error).toContain(long.slice(0, 200));
    expect(error).not.toContain(long.slice(0, 201));

    const target = await startReceiver(reply(200));
    const r302 = await startReceiver(reply(302, "", { location: target.url }));
    const o302 = await channel.push(message(), webhookTopic(r302.url));
    expect(o302).toMatchObject({ outcome: "dead", reason: "rejected" });
    expect((o302 as { error: string }).error).toContain("302 Found");
    expect(target.received).toHaveLength(0);
  });

  it("a huge error answer is cut at 64 KiB: dead/rejected with its start, and the next push goes through", async () => {
    const huge = `too big: ${"y".repeat(4 * 1024 * 1024)}`;
    const r = await startReceiver((_req, body, res) => {
      if (JSON.parse(body).id === "after") res.writeHead(200).end("ok");
      else res.writeHead(422).end(huge);
    });
    const o = await channel.push(message(), webhookTopic(r.url));
    expect(o).toMatchObject({ outcome: "dead", reason: "rejected" });
    expect((o as { error: string }).error).toContain("422 Unprocessable Entity");
    expect((o as { error: string }).error).toContain("too big: yyy");
    expect(await channel.push(message({ id: "after" }), webhookTopic(r.url))).toMatchObject({ outcome: "delivered" });
  });

  it("a header value HTTP cannot carry → dead/rejected saying the request cannot be built, nothing sent", async () => {
    const r = await startReceiver(reply(200));
    const o = await channel.push(message(), webhookTopic(r.url, { headers: { "x-bad": "line\r\nbreak" } }));
    expect(o).toMatchObject({ outcome: "dead", reason: "rejected" });
    expect((o as { error: string }).error).toMatch(/^webhook request for topic \S+ cannot be built: /);
    expect(r.received).toHaveLength(0);
  });

  it("a receiver that never answers → retry naming the timeout", async () => {
    const r = await startReceiver(() => {});
    const started = Date.now();
    const outcome = await channel.push(message(), webhookTopic(r.url, { timeoutMs: 300 }));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(outcome).toEqual({
      outcome: "retry",
      reason: `POST ${new URL(r.url).origin}/hooks/herald timed out after 300 ms`,
    });
  });

  it("a receiver that stalls in the middle of its body → retry naming the timeout", async () => {
    const r = await startReceiver((_req, _body, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    });
    const outcome = await channel.push(message(), webhookTopic(r.url, { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ outcome: "retry", reason: expect.stringMatching(/timed out after 300 ms$/) });
  });

  it("connection refused → retry saying so", async () => {
    const port = await freePort();
    const outcome = await channel.push(message(), webhookTopic(`http://127.0.0.1:${port}/hook`));
    expect(outcome.outcome).toBe("retry");
    expect((outcome as { reason: string }).reason).toMatch(new RegExp(`^POST http://127\\.0\\.0\\.1:${port}/hook failed: .*ECONNREFUSED`));
  });

  it("keeps connections alive: 20 sequential pushes use far fewer than 20 TCP connections", async () => {
    const r = await startReceiver(reply(200, JSON.stringify({ accepted: true })));
    const topic = webhookTopic(r.url);
    for (let i = 0; i < 20; i++) {
      expect(await channel.push(message({ id: `msg-${i}` }), topic)).toMatchObject({ outcome: "delivered" });
    }
    // Rejections read their body too, so they return the socket as well.
    const bad = await startReceiver(reply(422, "no"));
    for (let i = 0; i < 10; i++) expect((await channel.push(message(), webhookTopic(bad.url))).outcome).toBe("dead");
    expect(r.received).toHaveLength(20);
    expect(r.connections()).toBeLessThanOrEqual(2);
    expect(bad.connections()).toBeLessThanOrEqual(2);
  });

  it("never puts the secret, header tokens or the query string in an outcome, even when echoed", async () => {
    const echo: Handler = (req, _body, res) => {
      const status = new URL(req.url!, "http://x").searchParams.get("status");
      if (status === "hang") return;
      res.writeHead(Number(status)).end(`bad auth ${req.headers.authorization} secret=${SECRET} token=query-token-1234`);
    };
    const r = await startReceiver(echo);
    const at = (status: string) => r.url.replace("token=", `status=${status}&token=`);
    const outcomes: Outcome[] = [];
    for (const status of ["400", "500", "302", "200"]) outcomes.push(await channel.push(message(), webhookTopic(at(status))));
    outcomes.push(await channel.push(message(), webhookTopic(at("hang"), { timeoutMs: 100 })));
    outcomes.push(await channel.push(message(), webhookTopic(`http://127.0.0.1:${await freePort()}/h?token=query-token-1234`)));
    expect(outcomes.map((o) => o.outcome)).toContain("dead");
    for (const o of outcomes) {
      expect(texts(o)).not.toContain(SECRET);
      expect(texts(o)).not.toContain(SECRET.slice("whsec_".length));
      expect(texts(o)).not.toContain("header-token-5678");
      expect(texts(o)).not.toContain("query-token-1234");
    }
  });

  it("close() waits for pushes in flight, then refuses new ones as retry", async () => {
    let answer: (() => void) | undefined;
    const r = await startReceiver((_req, _body, res) => {
      answer = () => res.writeHead(200).end();
    });
    const ch = new WebhookChannel();
    const pending = ch.push(message(), webhookTopic(r.url));
    await waitFor(() => answer !== undefined, { timeoutMs: 5000, what: "the request to arrive" });
    let closed = false;
    const closing = ch.close().then(() => (closed = true));
    await Promise.resolve();
    expect(closed).toBe(false);
    answer!();
    await closing;
    expect(await pending).toMatchObject({ outcome: "delivered" });
    expect(await ch.push(message(), webhookTopic(r.url))).toEqual({ outcome: "retry", reason: "webhook channel is closed" });
  });
});

describe("WebhookChannel: the receiver's abort and retry.abortOn", () => {
  const channel = new WebhookChannel();
  const attempt = (n: number): Envelope => ({ id: message().id, topic: "demo", data: {}, createdAt: 0, source: "submit", attempts: n });
  const policy = { backoffMs: [200], maxAttempts: 3 };

  it("a non-2xx answer with webhook-delivery: abort → dead/rejected saying the receiver asked to stop retries", async () => {
    const r = await startReceiver(reply(503, "gone for good", { "webhook-delivery": "abort" }));
    const o = await channel.push(message(), webhookTopic(r.url));
    expect(o).toEqual({
      outcome: "dead",
      reason: "rejected",
      error: expect.stringMatching(/^the receiver asked to stop retries \(webhook-delivery: abort\): webhook answered 503 Service Unavailable to POST http:\/\/127\.0\.0\.1:\d+\/hooks\/herald: gone for good$/),
    });
    expect(r.received).toHaveLength(1);
  });

  it("reads the header's name and value in any case, with any status that is not 2xx", async () => {
    for (const [status, value] of [[429, "ABORT"], [500, " Abort "], [408, "abort"], [404, "aBoRt"]] as const) {
      const r = await startReceiver(reply(status, "", { "Webhook-Delivery": value }));
      const o = await channel.push(message(), webhookTopic(r.url));
      expect(o, `${status} ${value}`).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("asked to stop retries") });
    }
  });

  it("a 2xx with the header is delivered, and another value of the header changes nothing", async () => {
    const ok = await startReceiver(reply(200, "", { "webhook-delivery": "abort" }));
    expect(await channel.push(message(), webhookTopic(ok.url))).toMatchObject({ outcome: "delivered" });
    const other = await startReceiver(reply(503, "", { "webhook-delivery": "retry-later" }));
    expect(await channel.push(message(), webhookTopic(other.url))).toMatchObject({ outcome: "retry", status: 503 });
  });

  it("a transient answer carries its status, so a status in retry.abortOn is settled as a dead letter at once", async () => {
    const r = await startReceiver(reply(503, "maintenance"));
    const o = await channel.push(message(), webhookTopic(r.url));
    expect(o).toMatchObject({ outcome: "retry", status: 503 });
    expect(decideSettlement(o, attempt(1), policy)).toMatchObject({ action: "retry", delayMs: 200 });
    expect(decideSettlement(o, attempt(1), { ...policy, abortOn: [503] })).toEqual({
      action: "dead",
      reason: "rejected",
      error: expect.stringMatching(/^webhook answered 503 Service Unavailable to .*: maintenance \(503 is in the topic's retry\.abortOn: not retried\)$/),
    });
    expect(decideSettlement(o, attempt(1), { ...policy, abortOn: [500, 502] })).toMatchObject({ action: "retry" });
    // Timeouts and network errors have no status: abortOn cannot stop them.
    const port = await freePort();
    const refused = await channel.push(message(), webhookTopic(`http://127.0.0.1:${port}/hook`));
    expect(refused).not.toHaveProperty("status");
    expect(decideSettlement(refused, attempt(1), { ...policy, abortOn: [503] })).toMatchObject({ action: "retry" });
  });
});

// ---------------------------------------------------------------------------------------------
// NATS channel against a real nats-server

describe("NatsChannel", () => {
  async function natsFixture(): Promise<NatsConnection> {
    const nats = await startTestNats();
    onTestFinished(() => nats.stop());
    const nc = await connect({ servers: nats.url });
    onTestFinished(async () => {
      if (!nc.isClosed()) await nc.close();
    });
    return nc;
  }

  function collect(nc: NatsConnection, subject: string): Msg[] {
    const got: Msg[] = [];
    nc.subscribe(subject, {
      callback: (err, m) => {
        if (!err) got.push(m);
      },
    });
    return got;
  }

  it("publishes the JSON payload on herald.out.<topic> or the topic's subject, with the id headers", async () => {
    const nc = await natsFixture();
    const sub = await connect({ servers: nc.getServer() });
    onTestFinished(() => sub.close());
    const onDefault = collect(sub, "herald.out.demo");
    const onCustom = collect(sub, "alerts.mobile");
    await sub.flush();

    const channels = createChannels(nc, names("herald"));
    onTestFinished(() => channels.close());
    const natsTopic: TopicConfig = { channel: "nats" };
    const ch = channels.channelFor(natsTopic);
    expect(ch.kind).toBe("nats");
    expect(channels.channelFor(webhookTopic("http://127.0.0.1:1/")).kind).toBe("webhook");

    expect(await ch.push(message(), natsTopic)).toEqual({ outcome: "delivered", detail: "published on herald.out.demo" });
    const custom = message({ id: "01HZX3J7Q8M6V3P4T5W6Y7Z8AC", to: undefined });
    expect(await ch.push(custom, { channel: "nats", subject: "alerts.mobile" })).toMatchObject({ outcome: "delivered" });

    await waitFor(() => onDefault.length === 1, { timeoutMs: 5000, what: "the message on herald.out.demo" });
    const m = onDefault[0];
    expect(m!.json()).toEqual(pushPayload(message()));
    expect(m!.headers?.get("Nats-Msg-Id")).toBe(message().id);
    expect(m!.headers?.get("Herald-Id")).toBe(message().id);
    await waitFor(() => onCustom.length === 1, { timeoutMs: 5000, what: "the message on alerts.mobile" });
    const c = onCustom[0];
    expect(c!.json()).toEqual(pushPayload(custom));
    expect(c!.json()).not.toHaveProperty("to");
    expect(c!.headers?.get("Nats-Msg-Id")).toBe(custom.id);
  });

  it("confirms a burst of concurrent pushes, all delivered and all received", async () => {
    const nc = await natsFixture();
    const got = collect(nc, "herald.out.burst");
    await nc.flush();
    const ch = new NatsChannel(nc, names().out);
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => ch.push(message({ id: `m${i}`, topic: "burst" }), { channel: "nats" })),
    );
    expect(outcomes.every((o) => o.outcome === "delivered")).toBe(true);
    await waitFor(() => got.length === 200, { timeoutMs: 5000, what: "200 messages on herald.out.burst" });
  });

  it("a closed connection → retry, not a silent loss", async () => {
    const nc = await natsFixture();
    const ch = new NatsChannel(nc, names().out);
    await nc.close();
    const outcome = await ch.push(message(), { channel: "nats" });
    expect(outcome.outcome).toBe("retry");
    expect((outcome as { reason: string }).reason).toMatch(/^publish on herald\.out\.demo failed: /);
  });

  it("a server that went away → retry (the flush is never confirmed)", async () => {
    const nats = await startTestNats();
    onTestFinished(() => nats.stop());
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    onTestFinished(() => nc.close());
    await nats.stop();
    const ch = new NatsChannel(nc, names().out, { flushTimeoutMs: 300 });
    const started = Date.now();
    const outcome = await ch.push(message(), { channel: "nats" });
    expect(outcome.outcome).toBe("retry");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  describe("jetstream: true (delivered means stored)", () => {
    it("counts a push as delivered once the capturing stream stored it, once per id", async () => {
      const nc = await natsFixture();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "PUSHED", subjects: ["herald.out.durable"], storage: StorageType.Memory });
      const topic: TopicConfig = { channel: "nats", jetstream: true };
      const ch = new NatsChannel(nc, names().out);
      const first = await ch.push(message({ topic: "durable" }), topic);
      expect(first).toEqual({ outcome: "delivered", detail: "stored in stream PUSHED at 1" });
      // A retry of the same id is dropped by the stream's dedup, and still delivered.
      expect(await ch.push(message({ topic: "durable" }), topic)).toEqual({ outcome: "delivered", detail: "stored in stream PUSHED at 1 (a duplicate: stored before)" });
      const stored = await jsm.streams.getMessage("PUSHED", { seq: 1 });
      expect(stored!.json()).toEqual(pushPayload(message({ topic: "durable" })));
      expect(stored!.header.get("Herald-Id")).toBe(message().id);
      expect((await jsm.streams.info("PUSHED")).state.messages).toBe(1);
    });

    it("no stream captures the subject → retry that says so, never delivered to nobody", async () => {
      const nc = await natsFixture();
      const ch = new NatsChannel(nc, names().out, { flushTimeoutMs: 1000 });
      const outcome = await ch.push(message({ topic: "nostream" }), { channel: "nats", jetstream: true });
      expect(outcome).toEqual({
        outcome: "retry",
        reason:
          "no JetStream stream stored the push on herald.out.nostream (none captures it, or it has no leader now): create a stream with subject herald.out.nostream, or set jetstream: false",
      });
      // The core publish, by contrast, calls the same push delivered.
      expect((await ch.push(message({ topic: "nostream" }), { channel: "nats" })).outcome).toBe("delivered");
    });

    it("a message over the stream's max_msg_size → dead (rejected) with the server's reason", async () => {
      const nc = await natsFixture();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "SMALL", subjects: ["herald.out.small"], storage: StorageType.Memory, max_msg_size: 64 });
      const outcome = await new NatsChannel(nc, names().out).push(message({ topic: "small" }), { channel: "nats", jetstream: true });
      expect(outcome).toMatchObject({ outcome: "dead", reason: "rejected" });
      expect((outcome as { error: string }).error).toMatch(/^the stream capturing herald\.out\.small refused the message: .*maximum/i);
    });
  });
});
