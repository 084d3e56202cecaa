/**
 * The webpush channel against a Web Push service on loopback (test/helpers/webpush.ts: HTTPS on a
 * certificate of our own CA; it verifies each push's VAPID JWT and decrypts its body for the
 * subscription): the channel alone (what is sent, and how each answer maps to an outcome), then
 * end to end from `herald publish` on a real cluster.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import webpush from "web-push";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_WEBPUSH_PAYLOAD_BYTES, pushPayload, WebPushChannel, type RecipientRegistry } from "../actors/pusher/channels/index.js";
import type { WebPushTopicConfig } from "../runtime/config/schema.js";
import type { Recipient, WebPushSubscription } from "../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../runtime/pipeline/types.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { makePki } from "./helpers/pki.js";
import { startPushService, type PushService } from "./helpers/webpush.js";

const SUBJECT = "mailto:ops@example.com";
const KEY_ENV = "HERALD_TEST_VAPID_PRIVATE_KEY";

function message(over: Partial<PushMessage> = {}): PushMessage {
  return {
    id: "01WEBPUSHTEST00000000000000",
    topic: "alerts",
    createdAt: 1_700_000_000_000,
    rendered: { title: "Hello Ada", body: "Your order shipped." },
    data: { name: "Ada", order: 42 },
    ...over,
  };
}

/** A recipients registry in memory, as the pusher's KV one behaves. */
function memoryRegistry(records: Record<string, Recipient>): RecipientRegistry & { records: Record<string, Recipient> } {
  return {
    records,
    get: async (id) => (records[id] === undefined ? undefined : structuredClone(records[id])),
    removeAddresses: async (id, kind, keys) => {
      const r = records[id];
      if (kind !== "webpush" || !r?.webpush) return 0;
      const kept = r.webpush.filter((s) => !keys.includes(s.endpoint));
      const removed = r.webpush.length - kept.length;
      r.webpush = kept;
      return removed;
    },
  };
}

describe("webpush channel", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let service: PushService;
  let vapid: { publicKey: string; privateKey: string };
  let topic: WebPushTopicConfig;
  let ch: WebPushChannel;

  /** One push; the VAPID private key must be in no outcome, whatever it is. */
  async function push(msg: PushMessage, t: WebPushTopicConfig = topic, channel: WebPushChannel = ch): Promise<Outcome> {
    const o = await channel.push(msg, t);
    expect(JSON.stringify(o)).not.toContain(vapid.privateKey);
    return o;
  }
  const to = (s: WebPushSubscription) => `webpush:${JSON.stringify(s)}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "herald-webpush-"));
    pki = makePki(dir);
    vapid = webpush.generateVAPIDKeys();
    service = await startPushService(pki, { subject: SUBJECT, publicKey: vapid.publicKey });
    process.env[KEY_ENV] = vapid.privateKey;
    topic = {
      channel: "webpush",
      vapid: { subject: SUBJECT, publicKey: vapid.publicKey, privateKey: { env: KEY_ENV } },
      ttlSec: 3600,
      urgency: "low",
      caFile: pki.ca,
      timeoutMs: 5000,
    };
    ch = new WebPushChannel();
  });

  afterAll(async () => {
    await ch?.close();
    await service?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("pushes the payload encrypted for the subscription, signed with the topic's VAPID key, with the topic's TTL and urgency", async () => {
    const { id, subscription } = service.subscribe();
    const msg = message({ to: to(subscription) });
    const o = await push(msg);
    expect(service.problems).toEqual([]);
    expect(o).toMatchObject({ outcome: "delivered" });
    const [got, ...more] = service.pushes.filter((p) => p.sub === id);
    expect(more).toEqual([]);
    expect(got!.payload).toBe(JSON.stringify(pushPayload(msg)));
    expect(JSON.parse(got!.payload)).toEqual({ id: msg.id, topic: "alerts", to: msg.to, createdAt: 1_700_000_000_000, title: "Hello Ada", body: "Your order shipped.", data: { name: "Ada", order: 42 } });
    expect([got!.ttl, got!.urgency]).toEqual([3600, "low"]);
  });

  it("a rendered ttl and urgency override the topic's per message; empty ones leave the topic's; invalid ones are a render error", async () => {
    const { id, subscription } = service.subscribe();
    expect(await push(message({ to: to(subscription), rendered: { title: "t", ttl: "60", urgency: "high" } }))).toMatchObject({ outcome: "delivered" });
    expect(await push(message({ to: to(subscription), rendered: { title: "t", ttl: " ", urgency: "" } }))).toMatchObject({ outcome: "delivered" });
    expect(service.pushes.filter((p) => p.sub === id).map((p) => [p.ttl, p.urgency])).toEqual([
      [60, "high"],
      [3600, "low"],
    ]);
    const requests = service.requests;
    expect(await push(message({ to: to(subscription), rendered: { ttl: "soon" } }))).toEqual({ outcome: "dead", reason: "render", error: expect.stringMatching(/"ttl" rendered "soon"; it must be whole seconds from 0 to 2419200/) });
    expect(await push(message({ to: to(subscription), rendered: { ttl: "2419201" } }))).toMatchObject({ outcome: "dead", reason: "render" });
    expect(await push(message({ to: to(subscription), rendered: { urgency: "urgent" } }))).toEqual({ outcome: "dead", reason: "render", error: expect.stringMatching(/"urgency" rendered "urgent"; it must be one of very-low, low, normal, high/) });
    expect(service.requests).toBe(requests);
  });

  it("sends a recipient's every subscription; one the service answers 410 is removed from the registry and the rest delivered", async () => {
    const a = service.subscribe();
    const b = service.subscribe();
    const registry = memoryRegistry({ ada: { webpush: [a.subscription, b.subscription] } });
    const channel = new WebPushChannel(registry);
    try {
      service.script(b.id, { status: 410, body: "subscription expired" });
      const o = await push(message({ to: "ada" }), topic, channel);
      expect(o).toMatchObject({ outcome: "delivered", removed: 1, detail: expect.stringContaining("pushed to 1 of recipient ada's 2 webpush addresses; 1 dead") });
      expect(registry.records.ada!.webpush).toEqual([a.subscription]);
      expect(service.delivered(a.id)).toEqual([expect.objectContaining({ id: message().id, to: "ada", title: "Hello Ada" })]);
      // b got the push (it decrypted) and refused it.
      expect(service.pushes.filter((p) => p.sub === b.id).map((p) => p.status)).toEqual([410]);

      // 404 means gone too; with every subscription gone the push is delivered nowhere.
      service.script(a.id, { status: 404 });
      expect(await push(message({ to: "ada" }), topic, channel)).toMatchObject({ outcome: "delivered", nowhere: true, removed: 1 });
      expect(registry.records.ada!.webpush).toEqual([]);
    } finally {
      await channel.close();
    }
  });

  it("429 is a retry after its Retry-After; 5xx a retry (503's Retry-After honoured); 413 and 400 dead letters with the service's words", async () => {
    const { id, subscription } = service.subscribe();
    const msg = message({ to: to(subscription) });
    service.script(id, { status: 429, headers: { "retry-after": "7" }, body: "slow down" });
    expect(await push(msg)).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 429 (too many pushes): slow down"), retryAfterMs: 7000 });
    service.script(id, { status: 500, body: "internal error" });
    const e500 = await push(msg);
    expect(e500).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 500: internal error") });
    service.script(id, { status: 503, headers: { "retry-after": "3" } });
    expect(await push(msg)).toMatchObject({ outcome: "retry", retryAfterMs: 3000 });
    service.script(id, { status: 413, body: "payload too large" });
    expect(await push(msg)).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/answered 413, the payload is too large for it: payload too large; send less/) });
    const long = `UnauthorizedRegistration ${"x".repeat(400)}`;
    service.script(id, { status: 400, body: long });
    const bad = await push(msg);
    expect(bad).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringContaining(`refused the push (400): ${long.slice(0, 300)}…`) });
    expect((bad as { error: string }).error).not.toContain(long.slice(0, 301));
    service.script(id, { status: 403 });
    expect(await push(msg)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("refused the push (403) (the VAPID signature was refused") });
    // Each of them reached the service as a valid push.
    expect(service.pushes.filter((p) => p.sub === id).map((p) => p.status)).toEqual([429, 500, 503, 413, 400, 403]);
    expect(service.problems).toEqual([]);
  });

  it("a service that is down, does not answer in time, or has a certificate not of the topic's CA is a retry", async () => {
    const { subscription } = service.subscribe();
    const down = await push(message({ to: to({ ...subscription, endpoint: "https://127.0.0.1:1/push/x" }) }));
    expect(down).toMatchObject({ outcome: "retry", reason: expect.stringContaining("ECONNREFUSED") });

    // A server that takes the connection and never answers (not even the TLS handshake).
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (silent.address() as AddressInfo).port;
      const started = performance.now();
      const hung = await push(message({ to: to({ ...subscription, endpoint: `https://127.0.0.1:${port}/push/x` }) }), { ...topic, timeoutMs: 300 });
      expect(hung).toMatchObject({ outcome: "retry", reason: expect.stringContaining("did not answer within 300 ms") });
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }

    const { caFile: _ca, ...untrusted } = topic;
    const requests = service.requests;
    const distrust = await push(message({ to: to(subscription) }), untrusted);
    expect(distrust).toMatchObject({ outcome: "retry", reason: expect.stringMatching(/certificate/i) });
    expect(service.requests).toBe(requests);
  });

  it(`a payload over ${MAX_WEBPUSH_PAYLOAD_BYTES} bytes is a dead letter without a request; one of exactly that many fills the service's 4096 bytes`, async () => {
    const { id, subscription } = service.subscribe();
    const sized = (bytes: number) => {
      const base = message({ to: to(subscription), rendered: { body: "" } });
      const pad = bytes - Buffer.byteLength(JSON.stringify(pushPayload(base)));
      return message({ to: to(subscription), rendered: { body: "é".repeat(Math.floor(pad / 2)) + "x".repeat(pad % 2) } });
    };
    const fits = sized(MAX_WEBPUSH_PAYLOAD_BYTES);
    expect(Buffer.byteLength(JSON.stringify(pushPayload(fits)))).toBe(3993);
    expect(await push(fits)).toMatchObject({ outcome: "delivered" });
    const got = service.pushes.filter((p) => p.sub === id);
    expect(got.map((p) => [p.status, p.bodyBytes])).toEqual([[201, 4096]]);
    expect(got[0]!.payload).toBe(JSON.stringify(pushPayload(fits)));

    const requests = service.requests;
    const over = await push(sized(MAX_WEBPUSH_PAYLOAD_BYTES + 1));
    expect(over).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/payload is 3994 bytes, over the 3993 .*send less/) });
    expect(service.requests).toBe(requests);
  });

  it("an explicit webpush:<subscription> must be one; a recipient id needs a registry", async () => {
    const requests = service.requests;
    expect(await push(message({ to: "webpush:{not json" }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("it must be a subscription as JSON") });
    const { subscription } = service.subscribe();
    expect(await push(message({ to: to({ ...subscription, endpoint: "http://127.0.0.1/push/x" }) }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("endpoint must be an https:// URL") });
    expect(await push(message({ to: to({ ...subscription, keys: { ...subscription.keys, auth: "c2hvcnQ" } }) }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("16-byte secret") });
    expect(await push(message({ to: undefined }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("got none") });
    expect(await push(message({ to: "ada" }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("has no recipients registry") });
    // A p256dh of the right length that is not a point on P-256: no push to it can be encrypted.
    const offCurve = Buffer.alloc(65, 0xff);
    offCurve[0] = 4;
    expect(await push(message({ to: to({ ...subscription, keys: { ...subscription.keys, p256dh: offCurve.toString("base64url") } }) }))).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("cannot encrypt a push for the subscription") });
    expect(service.requests).toBe(requests);
  });

  it("a VAPID key that cannot sign is a dead letter naming the config key, never quoting the key", async () => {
    const { subscription } = service.subscribe();
    const msg = message({ to: to(subscription) });
    const other = webpush.generateVAPIDKeys();
    const mismatched = await push(msg, { ...topic, vapid: { ...topic.vapid, privateKey: other.privateKey } });
    expect(mismatched).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringContaining("topics.alerts.vapid.privateKey is not the private key of vapid.publicKey") });
    expect(JSON.stringify(mismatched)).not.toContain(other.privateKey);
    expect(await push(msg, { ...topic, vapid: { ...topic.vapid, privateKey: "short" } })).toMatchObject({ outcome: "dead", error: expect.stringContaining("must be the base64url of 32 bytes") });
    expect(await push(msg, { ...topic, vapid: { ...topic.vapid, privateKey: { env: "HERALD_TEST_NO_SUCH_VAR" } } })).toMatchObject({
      outcome: "dead",
      error: expect.stringContaining("topics.alerts.vapid.privateKey: the environment variable HERALD_TEST_NO_SUCH_VAR is not set"),
    });
    expect(await push(msg, { ...topic, caFile: join(dir, "no-such-ca.pem") })).toMatchObject({ outcome: "dead", error: expect.stringContaining("topics.alerts.caFile: cannot read") });
  });

  it("end to end: herald publish reaches each of a recipient's subscriptions; a 410 removes one; a 429 is retried after its Retry-After", async () => {
    const sub1 = service.subscribe();
    const sub2 = service.subscribe();
    const cluster = await TestCluster.start({
      nodes: 1,
      http: true,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      nodeEnv: { [KEY_ENV]: vapid.privateKey },
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 5 } },
        topics: { alerts: { ...topic, ttlSec: 600, urgency: "high", template: { title: "Hello {{name}}" } } },
      },
    });
    const cli = (...args: string[]) => cluster.cli([...args, "-c", cluster.configFile]);
    const publish = async (name: string) => {
      const r = await cli("publish", "alerts", "--to", "ada", "--data", JSON.stringify({ name }));
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split(/\s+/).at(-1)!;
    };
    const metric = async (name: string, labels: string) => {
      const port = (cluster.config.nodes[0] as { http: { port: number } }).http.port;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.split(",").every((kv) => l.includes(kv)));
      return line === undefined ? undefined : Number(line.split(" ").at(-1));
    };
    try {
      cluster.startAll();
      await cluster.waitStatus("running", (s) => s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running")), 30_000);
      const set = await cli("recipients", "set", "ada", "--json", JSON.stringify({ webpush: [sub1.subscription, sub2.subscription] }));
      expect(set.code, set.stderr).toBe(0);

      const first = await publish("Ada");
      await waitFor(() => service.delivered(sub1.id).length > 0 && service.delivered(sub2.id).length > 0, { timeoutMs: 20_000, what: "the push at both subscriptions" });
      for (const sub of [sub1, sub2]) {
        expect(service.delivered(sub.id)).toEqual([{ id: first, topic: "alerts", to: "ada", createdAt: expect.any(Number), title: "Hello Ada", data: { name: "Ada" } }]);
      }
      expect(service.pushes.filter((p) => p.sub === sub1.id).map((p) => [p.ttl, p.urgency])).toEqual([[600, "high"]]);

      // sub2's browser unsubscribed: the next push removes it from ada's record, and is no dead letter.
      service.always(sub2.id, { status: 410 });
      const second = await publish("Bea");
      await waitFor(() => service.delivered(sub1.id).some((p) => p.id === second), { timeoutMs: 20_000, what: "the second push at sub1" });
      const ada = await waitFor(async () => {
        const r = JSON.parse((await cli("recipients", "get", "ada", "--json")).stdout) as Recipient;
        return r.webpush?.length === 1 ? r : undefined;
      }, { timeoutMs: 10_000, what: "ada's record without sub2" });
      expect(ada).toEqual({ webpush: [sub1.subscription] });
      expect(service.pushes.filter((p) => p.sub === sub2.id).map((p) => [JSON.parse(p.payload).id, p.status])).toEqual([[first, 201], [second, 410]]);
      await waitFor(async () => (await metric("herald_addresses_removed_total", 'topic="alerts",channel="webpush"')) === 1, { timeoutMs: 10_000, what: "herald_addresses_removed_total 1" });

      // Too many pushes: the service asks for a second's pause, and gets it.
      service.script(sub1.id, { status: 429, headers: { "retry-after": "1" } });
      const third = await publish("Cy");
      await waitFor(() => service.delivered(sub1.id).some((p) => p.id === third), { timeoutMs: 20_000, what: "the third push taken on its retry" });
      const tries = service.pushes.filter((p) => p.sub === sub1.id && JSON.parse(p.payload).id === third);
      expect(tries.map((p) => p.status)).toEqual([429, 201]);
      // The backoff alone would retry after 200 ms.
      expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(950);

      const dlq = await cli("dlq", "list", "--json");
      expect(dlq.code, dlq.stderr).toBe(0);
      expect(JSON.parse(dlq.stdout || "[]")).toEqual([]);
      expect(service.problems).toEqual([]);
      expect(cluster.nodeOutput("n1")).not.toContain(vapid.privateKey);
    } finally {
      await cluster.stop();
    }
  });
});
