/**
 * The apns channel against a loopback APNs (test/helpers/apns.ts: HTTP/2 over TLS on a test CA's
 * certificate, the provider token verified with the public half of the test's .p8 key, every
 * header and the body checked, Apple's documented errors answered): the channel alone (what is
 * sent, how each answer maps to an outcome, one session for every push), then end to end from
 * `herald publish` on a real cluster.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importSPKI } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApnsChannel, apnsId, type RecipientRegistry } from "../actors/pusher/channels/index.js";
import type { ApnsTopicConfig } from "../runtime/config/schema.js";
import type { Recipient } from "../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../runtime/pipeline/types.js";
import { startFakeApns, type FakeApns } from "./helpers/apns.js";
import { okCli, startRunning } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { makePki } from "./helpers/pki.js";

const TEAM = "TEAM123456";
const KEY_ID = "KEY1234567";
const BUNDLE = "com.example.herald";

/** Device tokens (64 hex digits), each scripted to get one of APNs's answers. */
const tok = (n: number) => n.toString(16).padStart(2, "0").repeat(32);
const OK = tok(0xa1);
const OK2 = tok(0xa2);
const GONE = tok(0xb1);
const BAD_TOKEN = tok(0xb2);
const EXPIRED = tok(0xc1);
const BUSY = tok(0xc2);
const DOWN = tok(0xc3);
const BAD_TOPIC = tok(0xd1);
const HANG = tok(0xe1);

function script(token: string, nth: number): ReturnType<FakeApns["answer"]> {
  switch (token) {
    case GONE:
      return { status: 410, reason: "Unregistered" };
    case BAD_TOKEN:
      return { status: 400, reason: "BadDeviceToken" };
    case EXPIRED:
      return nth === 0 ? { status: 403, reason: "ExpiredProviderToken" } : undefined;
    case BUSY:
      return { status: 429, reason: "TooManyRequests", headers: { "retry-after": "7" } };
    case DOWN:
      return { status: 500, reason: "InternalServerError" };
    case BAD_TOPIC:
      return { status: 400, reason: "BadTopic" };
    case HANG:
      return "hang";
    default:
      return undefined;
  }
}

function message(over: Partial<PushMessage> = {}): PushMessage {
  return {
    id: "01APNSTEST00000000000000000",
    topic: "ios",
    to: `apns:${OK}`,
    createdAt: 1_700_000_000_000,
    rendered: { title: "Hello Ada", body: "Your order shipped.", sound: "default", badge: "3", orderId: "A-17" },
    data: { name: "Ada", order: 17 },
    ...over,
  };
}

/** A recipients registry in memory, as the pusher's KV-backed one behaves. */
function memoryRegistry(records: Record<string, Recipient>): RecipientRegistry & { removed: [string, string, string[]][] } {
  const removed: [string, string, string[]][] = [];
  return {
    removed,
    get: async (id) => records[id],
    removeAddresses: async (id, kind, keys) => {
      removed.push([id, kind, [...keys]]);
      const r = records[id];
      const list = (r?.[kind] ?? []) as string[];
      const kept = list.filter((a) => !keys.includes(a));
      if (r) (r as Record<string, unknown>)[kind] = kept;
      return list.length - kept.length;
    },
  };
}

describe("apns channel", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let apns: FakeApns;
  let topic: ApnsTopicConfig;
  /** What must never appear in an outcome or a log: the key's PEM body. */
  let keySecret: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "herald-apns-"));
    pki = makePki(dir);
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    keySecret = pem.split("\n")[1]!;
    await writeFile(join(dir, `AuthKey_${KEY_ID}.p8`), pem);
    // An RSA key where the .p8 should be, and a file that is no key at all.
    await writeFile(join(dir, "rsa.p8"), generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string);
    await writeFile(join(dir, "garbage.p8"), "not a key\n");
    apns = await startFakeApns({
      key: pki.serverKey,
      cert: pki.serverCert,
      publicKey: await importSPKI(publicKey.export({ type: "spki", format: "pem" }) as string, "ES256"),
      teamId: TEAM,
      keyId: KEY_ID,
      bundleId: BUNDLE,
    });
    apns.answer = script;
    topic = {
      channel: "apns",
      endpoint: apns.origin,
      teamId: TEAM,
      keyId: KEY_ID,
      keyFile: join(dir, `AuthKey_${KEY_ID}.p8`),
      bundleId: BUNDLE,
      pushType: "alert",
      priority: 10,
      ttlSec: 3600,
      caFile: pki.ca,
      timeoutMs: 5000,
      template: { title: "Hello {{name}}", body: "Your order shipped." },
    };
  });

  beforeEach(() => {
    apns.violations.length = 0;
  });

  afterAll(async () => {
    await apns?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Every secret a push could leak: the key, and every provider token the server was sent. */
  const expectNoSecrets = (...outcomes: Outcome[]) => {
    const text = JSON.stringify(outcomes);
    expect(text).not.toContain(keySecret);
    for (const r of apns.requests) expect(text).not.toContain(r.jwt);
  };

  it("POSTs /3/device/<token> with a verified ES256 provider token, the documented headers and the alert in aps", async () => {
    const ch = new ApnsChannel();
    try {
      const before = apns.requests.length;
      const sentAt = Math.floor(Date.now() / 1000);
      const o = await ch.push(message(), topic);
      expect(o).toMatchObject({ outcome: "delivered", detail: expect.stringMatching(/took the push to a1a1a1a1… \(apns-id [0-9a-f-]{36}, apns-unique-id /) });
      expect(apns.violations).toEqual([]);
      const req = apns.requests[before]!;
      expect(req.token).toBe(OK);
      expect(req.claims.iss).toBe(TEAM);
      expect(req.claims.iat).toBeGreaterThanOrEqual(sentAt - 1);
      expect(req.headers["apns-topic"]).toBe(BUNDLE);
      expect(req.headers["apns-push-type"]).toBe("alert");
      expect(req.headers["apns-priority"]).toBe("10");
      expect(Number(req.headers["apns-expiration"])).toBeGreaterThanOrEqual(sentAt + 3600);
      expect(Number(req.headers["apns-expiration"])).toBeLessThanOrEqual(sentAt + 3602);
      expect(req.headers["apns-id"]).toBe(apnsId("01APNSTEST00000000000000000"));
      expect(req.headers["apns-id"]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(req.body).toEqual({
        aps: { alert: { title: "Hello Ada", body: "Your order shipped." }, sound: "default", badge: 3 },
        id: "01APNSTEST00000000000000000",
        topic: "ios",
        to: `apns:${OK}`,
        createdAt: 1_700_000_000_000,
        orderId: "A-17",
        data: { name: "Ada", order: 17 },
      });
      expectNoSecrets(o);
    } finally {
      await ch.close();
    }
  });

  it("apns-id is the same on every push of one message and differs between messages; ttlSec 0 sends apns-expiration 0", async () => {
    const ch = new ApnsChannel();
    try {
      const before = apns.requests.length;
      await ch.push(message(), { ...topic, ttlSec: 0 });
      await ch.push(message(), topic);
      await ch.push(message({ id: "01APNSTEST00000000000000001" }), topic);
      const [a, b, c] = apns.requests.slice(before);
      expect(a!.headers["apns-expiration"]).toBe("0");
      expect(a!.headers["apns-id"]).toBe(b!.headers["apns-id"]);
      expect(c!.headers["apns-id"]).not.toBe(a!.headers["apns-id"]);
      expect(apns.violations).toEqual([]);
    } finally {
      await ch.close();
    }
  });

  it("a template with neither title nor body sends no alert; a background push says content-available", async () => {
    const ch = new ApnsChannel();
    try {
      const before = apns.requests.length;
      expect(await ch.push(message({ rendered: {} }), topic)).toMatchObject({ outcome: "delivered" });
      expect(await ch.push(message({ rendered: {} }), { ...topic, pushType: "background", priority: 5 })).toMatchObject({ outcome: "delivered" });
      const [plain, background] = apns.requests.slice(before);
      expect(plain!.body.aps).toEqual({});
      expect(background!.body.aps).toEqual({ "content-available": 1 });
      expect(background!.headers["apns-push-type"]).toBe("background");
      expect(background!.headers["apns-priority"]).toBe("5");
      expect(apns.violations).toEqual([]);
    } finally {
      await ch.close();
    }
  });

  it("maps APNs's documented answers: 410 and BadDeviceToken are dead tokens, 429 and 500 retries (after Retry-After), BadTopic a dead letter", async () => {
    const ch = new ApnsChannel();
    try {
      const gone = await ch.push(message({ to: `apns:${GONE}` }), topic);
      expect(gone).toEqual({ outcome: "delivered", nowhere: true, detail: expect.stringContaining("b1b1b1b1… is dead (APNs answered 410 Unregistered)") });
      const badToken = await ch.push(message({ to: `apns:${BAD_TOKEN}` }), topic);
      expect(badToken).toMatchObject({ outcome: "delivered", nowhere: true, detail: expect.stringContaining("400 BadDeviceToken") });
      const busy = await ch.push(message({ to: `apns:${BUSY}` }), topic);
      expect(busy).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 429 TooManyRequests"), retryAfterMs: 7000 });
      const down = await ch.push(message({ to: `apns:${DOWN}` }), topic);
      expect(down).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 500 InternalServerError") });
      const badTopic = await ch.push(message({ to: `apns:${BAD_TOPIC}` }), topic);
      expect(badTopic).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/refused the push to d1d1d1d1… \(400 BadTopic\): check bundleId/) });
      expect(apns.violations).toEqual([]);
      expectNoSecrets(gone, badToken, busy, down, badTopic);
    } finally {
      await ch.close();
    }
  });

  it("a wrong bundleId or a key APNs does not know is a dead letter saying what to fix", async () => {
    const ch = new ApnsChannel();
    try {
      const topicWrong = await ch.push(message(), { ...topic, bundleId: "com.example.other" });
      expect(topicWrong).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("(400 BadTopic): check bundleId") });
      // A valid P-256 key, but not the one whose public half APNs holds for KEY_ID.
      const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      await writeFile(join(dir, "other.p8"), other);
      const wrongKey = await ch.push(message(), { ...topic, keyFile: join(dir, "other.p8") });
      expect(wrongKey).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("(403 InvalidProviderToken): check teamId, keyId and keyFile") });
      expect(apns.violations).toEqual([expect.stringMatching(/^BadTopic/), expect.stringMatching(/^InvalidProviderToken: JWT: signature verification failed/)]);
      expect(JSON.stringify(wrongKey)).not.toContain(other.split("\n")[1]!);
      expectNoSecrets(topicWrong, wrongKey);
    } finally {
      await ch.close();
    }
  });

  it("403 ExpiredProviderToken: a new provider token at once, the push sent again with it, and kept for the next pushes", async () => {
    const ch = new ApnsChannel();
    try {
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      const before = apns.requests.length;
      const o = await ch.push(message({ to: `apns:${EXPIRED}` }), topic);
      expect(o).toMatchObject({ outcome: "delivered" });
      const [refused, resent] = apns.requests.slice(before);
      expect([refused!.token, refused!.status, refused!.reason]).toEqual([EXPIRED, 403, "ExpiredProviderToken"]);
      expect([resent!.token, resent!.status]).toEqual([EXPIRED, 200]);
      expect(resent!.jwt).not.toBe(refused!.jwt);
      expect(apns.requests[before - 1]!.jwt).toBe(refused!.jwt);
      await ch.push(message({ to: `apns:${OK2}` }), topic);
      expect(apns.requests.at(-1)!.jwt).toBe(resent!.jwt);
      expectNoSecrets(o);
    } finally {
      await ch.close();
    }
  });

  it("one provider token serves every push for 50 minutes; then a new one is made", async () => {
    // The channel's clock starts 55 minutes ago, so every token it signs is still under an hour old.
    let now = Date.now() - 55 * 60_000;
    const ch = new ApnsChannel(undefined, { now: () => now });
    try {
      const before = apns.requests.length;
      await ch.push(message(), topic);
      now += 49 * 60_000;
      await ch.push(message(), topic);
      now += 2 * 60_000;
      await ch.push(message(), topic);
      const [a, b, c] = apns.requests.slice(before);
      expect(b!.jwt).toBe(a!.jwt);
      expect(c!.jwt).not.toBe(a!.jwt);
      expect(c!.claims.iat! - a!.claims.iat!).toBeGreaterThanOrEqual(51 * 60 - 1);
      expect(apns.violations).toEqual([]);
    } finally {
      await ch.close();
    }
  });

  it("one HTTP/2 session carries every push, concurrent ones included", async () => {
    const ch = new ApnsChannel();
    try {
      const sessions = apns.sessions;
      const before = apns.requests.length;
      const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => ch.push(message({ id: `01APNSMANY${String(i).padStart(17, "0")}` }), topic)));
      outcomes.push(...(await Promise.all(Array.from({ length: 10 }, () => ch.push(message(), topic)))));
      expect(outcomes.every((o) => o.outcome === "delivered")).toBe(true);
      expect(apns.sessions - sessions).toBe(1);
      expect(new Set(apns.requests.slice(before).map((r) => r.session)).size).toBe(1);
    } finally {
      await ch.close();
    }
  });

  it("a session the server closes, or sends a GOAWAY on, is reopened for the next push", async () => {
    const ch = new ApnsChannel();
    try {
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      const first = apns.requests.at(-1)!.session;
      for (const s of apns.live) s.close();
      await waitFor(() => apns.live.size === 0, { timeoutMs: 5000, what: "the closed session gone" });
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      const second = apns.requests.at(-1)!.session;
      expect(second).toBeGreaterThan(first);

      const [s] = apns.live;
      s!.goaway();
      await waitFor(async () => (await ch.push(message(), topic)).outcome === "delivered" && apns.requests.at(-1)!.session > second, {
        timeoutMs: 5000,
        what: "a push on a new session after the GOAWAY",
      });
    } finally {
      await ch.close();
    }
  });

  it("a push in flight on a session that dies is a retry; one APNs does not answer times out as a retry", async () => {
    const ch = new ApnsChannel();
    try {
      const inFlight = ch.push(message({ to: `apns:${HANG}` }), topic);
      await waitFor(() => apns.hung.length > 0, { timeoutMs: 5000, what: "the push held by the server" });
      for (const s of apns.live) s.destroy();
      const died = await inFlight;
      expect(died, JSON.stringify(died)).toMatchObject({ outcome: "retry", reason: expect.stringContaining(`failed for the push to e1e1e1e1…`) });
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });

      const slow = await ch.push(message({ to: `apns:${HANG}` }), { ...topic, timeoutMs: 300 });
      expect(slow).toEqual({ outcome: "retry", reason: expect.stringContaining("did not answer the push to e1e1e1e1… within 300 ms") });
      // The session still answers PING: it is kept.
      const sessions = apns.sessions;
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      expect(apns.sessions).toBe(sessions);
    } finally {
      await ch.close();
    }
  });

  it("an APNs that is down or not trusted is a retry", async () => {
    const ch = new ApnsChannel();
    try {
      const down = await ch.push(message(), { ...topic, endpoint: "https://127.0.0.1:1", timeoutMs: 2000 });
      expect(down).toMatchObject({ outcome: "retry", reason: expect.stringContaining("ECONNREFUSED") });
      const { caFile: _ca, ...untrusted } = topic;
      const distrust = await ch.push(message(), untrusted);
      expect(distrust).toMatchObject({ outcome: "retry", reason: expect.stringMatching(/certificate/i) });
    } finally {
      await ch.close();
    }
  });

  it("a key file that is missing or no P-256 PKCS#8 key is a dead letter naming the file and the fix, never the key", async () => {
    const ch = new ApnsChannel();
    try {
      const before = apns.requests.length;
      const missing = await ch.push(message(), { ...topic, keyFile: join(dir, "nowhere.p8") });
      expect(missing).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining(`cannot read the APNs key file ${join(dir, "nowhere.p8")} (keyFile): ENOENT`) });
      const rsa = await ch.push(message(), { ...topic, keyFile: join(dir, "rsa.p8") });
      expect(rsa).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining(`the APNs key file ${join(dir, "rsa.p8")} (keyFile) is not a P-256 private key in PKCS#8 PEM`) });
      const garbage = await ch.push(message(), { ...topic, keyFile: join(dir, "garbage.p8") });
      expect(garbage).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("it must be the .p8 file") });
      expect(apns.requests.length).toBe(before);
      expect(JSON.stringify([missing, rsa, garbage])).not.toMatch(/BEGIN|PRIVATE KEY|not a key/);
      // Once the file is there, the next push uses it: a failed read is not remembered.
      await writeFile(join(dir, "nowhere.p8"), await import("node:fs/promises").then((f) => f.readFile(topic.keyFile, "utf8")));
      expect(await ch.push(message(), { ...topic, keyFile: join(dir, "nowhere.p8") })).toMatchObject({ outcome: "delivered" });
    } finally {
      await ch.close();
    }
  });

  it("a payload over 4096 bytes (5120 for VoIP), a badge that is no number or a template field \"aps\" is a dead letter without a request", async () => {
    const ch = new ApnsChannel();
    try {
      const before = apns.requests.length;
      const big = message({ data: { text: "x".repeat(4100) } });
      expect(await ch.push(big, topic)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/APNs payload is 4\d{3} bytes, over the 4096 APNs takes for a alert push/) });
      const voip = message({ data: { text: "x".repeat(4500) } });
      expect(await ch.push(voip, { ...topic, pushType: "voip" })).toMatchObject({ outcome: "delivered" });
      expect(apns.requests.at(-1)!.headers["apns-topic"]).toBe(`${BUNDLE}.voip`);
      expect(await ch.push(message({ data: { text: "x".repeat(5200) } }), { ...topic, pushType: "voip" })).toMatchObject({ outcome: "dead", error: expect.stringContaining("over the 5120") });
      expect(await ch.push(message({ rendered: { title: "t", badge: "three" } }), topic)).toMatchObject({ outcome: "dead", reason: "render", error: expect.stringContaining('"badge" must render a whole number') });
      expect(await ch.push(message({ rendered: { aps: "{}" } }), topic)).toMatchObject({ outcome: "dead", reason: "render", error: expect.stringContaining('"aps", which is APNs\'s own key') });
      expect(apns.requests.length).toBe(before + 1);
      expect(await ch.push(message({ to: "apns:not-hex" }), topic)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("is not an address of channel apns") });
    } finally {
      await ch.close();
    }
  });

  it("a recipient's tokens each get the push; a dead one is removed from the registry", async () => {
    const registry = memoryRegistry({ ada: { apns: [OK, GONE, OK2] } });
    const ch = new ApnsChannel(registry);
    try {
      const before = apns.requests.length;
      const o = await ch.push(message({ to: "ada" }), topic);
      expect(o).toEqual({ outcome: "delivered", removed: 1, detail: expect.stringContaining("pushed to 2 of recipient ada's 3 apns addresses; 1 dead (b1b1b1b1…) removed from recipient ada") });
      expect(apns.requests.slice(before).map((r) => r.token).sort()).toEqual([OK, OK2, GONE].sort());
      expect(registry.removed).toEqual([["ada", "apns", [GONE]]]);
      expect(await ch.push(message({ to: "nobody" }), topic)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("not a recipient in the registry") });
    } finally {
      await ch.close();
    }
  });

  it("end to end: herald publish to a recipient arrives with the rendered alert on each device; a dead token leaves the registry; BadTopic is a dead letter", async () => {
    const cluster = await startRunning({
      nodes: 1,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 5 } },
        topics: { ios: { ...topic, template: { title: "Hello {{name}}", body: "Order {{order}} shipped." } } },
      },
    });
    try {
      const cli = okCli(cluster);
      await cli("recipients", "set", "ada", "--json", JSON.stringify({ apns: [OK, GONE] }));
      const before = apns.requests.length;
      const id = (await cli("publish", "ios", "--to", "ada", "--data", '{"name":"Ada","order":17}')).trim().split(/\s+/).at(-1)!;
      const got = (await waitFor(() => {
        const mine = apns.requests.slice(before).filter((r) => r.body.id === id);
        return mine.length === 2 ? mine : undefined;
      }, { timeoutMs: 20_000, what: "the push at both of ada's devices" }))!;
      expect(got.map((r) => r.token).sort()).toEqual([OK, GONE].sort());
      for (const r of got) {
        expect(r.body.aps).toEqual({ alert: { title: "Hello Ada", body: "Order 17 shipped." } });
        expect(r.body).toMatchObject({ id, topic: "ios", to: "ada", data: { name: "Ada", order: 17 } });
        expect(r.headers["apns-id"]).toBe(apnsId(id));
      }
      await waitFor(async () => JSON.parse(await cli("recipients", "get", "ada", "--json")).apns?.length === 1, { timeoutMs: 20_000, what: "the dead token removed from ada" });
      expect(JSON.parse(await cli("recipients", "get", "ada", "--json"))).toEqual({ apns: [OK] });

      await cli("publish", "ios", "--to", `apns:${BAD_TOPIC}`, "--data", '{"name":"Bo","order":18}');
      const letters = await waitFor(async () => {
        const rows = JSON.parse((await cli("dlq", "list", "--json")) || "[]") as { topic: string; reason: string; error: string }[];
        return rows.length > 0 ? rows : undefined;
      }, { timeoutMs: 20_000, what: "the BadTopic push as a dead letter" });
      // One letter: the recipient's push with a dead token was delivered, not dead.
      expect(letters).toEqual([expect.objectContaining({ topic: "ios", reason: "rejected", error: expect.stringMatching(/\(400 BadTopic\): check bundleId/) })]);
      expect(apns.violations).toEqual([]);
      const output = cluster.nodeOutput("n1");
      expect(output).not.toContain(keySecret);
      for (const r of apns.requests) expect(output).not.toContain(r.jwt);
    } finally {
      await cluster.stop();
    }
  });
});
