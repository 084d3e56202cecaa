/**
 * The fcm channel against a loopback Google (test/helpers/fcm.ts: one HTTPS server on a test CA's
 * certificate playing the OAuth2 token endpoint, which verifies the service account's RS256
 * assertion, and FCM's HTTP v1 messages:send, which checks the access token and the message):
 * the channel alone (what is sent, how each answer maps to an outcome, one token for many sends),
 * then end to end from `herald publish` on a real cluster.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importSPKI } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FcmChannel, pushPayload, type RecipientRegistry } from "../actors/pusher/channels/index.js";
import type { FcmTopicConfig } from "../runtime/config/schema.js";
import type { Recipient } from "../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../runtime/pipeline/types.js";
import { SCOPE, startFakeGoogle, type FakeGoogle } from "./helpers/fcm.js";
import { okCli, startRunning } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { makePki } from "./helpers/pki.js";

const PROJECT = "herald-test-1";
const CLIENT_EMAIL = "herald-push@herald-test-1.iam.gserviceaccount.com";

/** Registration tokens, each scripted to get one of FCM's answers. */
const OK = "fcm-ok-aaaaaaaaaaaaaaaaaaaa:APA91b";
const OK2 = "fcm-ok-bbbbbbbbbbbbbbbbbbbb:APA91b";
const GONE = "fcm-gone-cccccccccccccccccc:APA91b";
const INVALID = "fcm-invalid-dddddddddddddddd";
const BUSY = "fcm-busy-eeeeeeeeeeeeeeeeeeee";
const DOWN = "fcm-down-ffffffffffffffffffff";
const FLAKY = "fcm-flaky-gggggggggggggggggg";
const OTHER_SENDER = "fcm-sender-hhhhhhhhhhhhhhhhh";
const HANG = "fcm-hang-iiiiiiiiiiiiiiiiiiii";

function script(token: string, nth: number): ReturnType<FakeGoogle["answer"]> {
  switch (token) {
    case GONE:
      return { status: 404, rpc: "NOT_FOUND", errorCode: "UNREGISTERED", message: "Requested entity was not found." };
    case INVALID:
      return { status: 400, rpc: "INVALID_ARGUMENT", errorCode: "INVALID_ARGUMENT", message: "The registration token is not a valid FCM registration token" };
    case BUSY:
      return { status: 429, rpc: "RESOURCE_EXHAUSTED", errorCode: "QUOTA_EXCEEDED", message: "Quota exceeded.", headers: { "retry-after": "9" } };
    case DOWN:
      return { status: 503, rpc: "UNAVAILABLE", errorCode: "UNAVAILABLE", message: "The service is currently unavailable." };
    case FLAKY:
      return { status: 500, rpc: "INTERNAL", errorCode: "INTERNAL", message: "Internal error encountered." };
    case OTHER_SENDER:
      return { status: 403, rpc: "PERMISSION_DENIED", errorCode: "SENDER_ID_MISMATCH", message: "SenderId mismatch" };
    case HANG:
      return nth === 0 ? "hang" : undefined;
    default:
      return undefined;
  }
}

function message(over: Partial<PushMessage> = {}): PushMessage {
  return {
    id: "01FCMTEST000000000000000000",
    topic: "android",
    to: `fcm:${OK}`,
    createdAt: 1_700_000_000_000,
    rendered: { title: "Hello Ada", body: "Your order shipped.", orderId: "A-17" },
    data: { name: "Ada", order: 17 },
    ...over,
  };
}

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

describe("fcm channel", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let google: FakeGoogle;
  let topic: FcmTopicConfig;
  let keySecret: string;
  /** Writes a service-account file; `over` replaces or (undefined) removes fields. */
  let account: (name: string, over?: Record<string, unknown>) => Promise<string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "herald-fcm-"));
    pki = makePki(dir);
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    keySecret = pem.split("\n")[2]!;
    google = await startFakeGoogle({
      key: pki.serverKey,
      cert: pki.serverCert,
      publicKey: await importSPKI(publicKey.export({ type: "spki", format: "pem" }) as string, "RS256"),
      clientEmail: CLIENT_EMAIL,
      projectId: PROJECT,
    });
    google.answer = script;
    account = async (name, over = {}) => {
      const fields: Record<string, unknown> = {
        type: "service_account",
        project_id: PROJECT,
        private_key_id: "0123456789abcdef0123456789abcdef01234567",
        private_key: pem,
        client_email: CLIENT_EMAIL,
        client_id: "100000000000000000001",
        auth_uri: "https://accounts.google.com/o/oauth2/auth",
        token_uri: google.tokenUri,
        ...over,
      };
      for (const [k, v] of Object.entries(fields)) if (v === undefined) delete fields[k];
      const file = join(dir, name);
      await writeFile(file, JSON.stringify(fields, null, 2));
      return file;
    };
    topic = {
      channel: "fcm",
      projectId: PROJECT,
      serviceAccountFile: await account("service-account.json"),
      endpoint: google.origin,
      ttlSec: 3600,
      priority: "high",
      caFile: pki.ca,
      timeoutMs: 5000,
      template: { title: "Hello {{name}}", body: "Your order shipped." },
    };
  });

  beforeEach(() => {
    google.violations.length = 0;
    google.tokenAnswer = () => undefined;
    google.expiresIn = 3599;
  });

  afterAll(async () => {
    await google?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The private key and every access token issued must never appear in an outcome. */
  const expectNoSecrets = (...outcomes: Outcome[]) => {
    const text = JSON.stringify(outcomes);
    expect(text).not.toContain(keySecret);
    for (const t of google.issued) expect(text).not.toContain(t);
  };

  it("gets an access token by a verified RS256 assertion and sends the documented message with it", async () => {
    const ch = new FcmChannel();
    try {
      const tokensBefore = google.tokenRequests.length;
      const before = google.sends.length;
      const sentAt = Math.floor(Date.now() / 1000);
      const msg = message();
      const o = await ch.push(msg, topic);
      expect(o).toEqual({ outcome: "delivered", detail: expect.stringMatching(new RegExp(`took the push to fcm-ok-a… as projects/${PROJECT}/messages/0:\\d+`)) });
      expect(google.violations).toEqual([]);
      const [tr] = google.tokenRequests.slice(tokensBefore);
      expect(tr!.status).toBe(200);
      expect(tr!.claims).toMatchObject({ iss: CLIENT_EMAIL, scope: SCOPE, aud: google.tokenUri });
      expect(tr!.claims!.iat).toBeGreaterThanOrEqual(sentAt - 1);
      expect(tr!.claims!.exp! - tr!.claims!.iat!).toBe(3600);
      const send = google.sends[before]!;
      expect(send.bearer).toBe(tr!.issued);
      expect(send.message).toEqual({
        token: OK,
        notification: { title: "Hello Ada", body: "Your order shipped." },
        data: { herald: expect.any(String) },
        android: { ttl: "3600s", priority: "high" },
      });
      expect(send.herald).toEqual(pushPayload(msg));
      expectNoSecrets(o);
    } finally {
      await ch.close();
    }
  });

  it("a template that renders neither title nor body sends a data message only", async () => {
    const ch = new FcmChannel();
    try {
      const msg = message({ rendered: { orderId: "A-17" } });
      expect(await ch.push(msg, { ...topic, ttlSec: 0, priority: "normal" })).toMatchObject({ outcome: "delivered" });
      const send = google.sends.at(-1)!;
      expect(send.message.notification).toBeUndefined();
      expect(send.message.android).toEqual({ ttl: "0s", priority: "normal" });
      expect(send.herald).toEqual(pushPayload(msg));
    } finally {
      await ch.close();
    }
  });

  it("one token request serves many sends, concurrent ones included", async () => {
    const ch = new FcmChannel();
    try {
      const tokensBefore = google.tokenRequests.length;
      const outcomes = await Promise.all(Array.from({ length: 30 }, () => ch.push(message(), topic)));
      outcomes.push(...(await Promise.all(Array.from({ length: 10 }, () => ch.push(message({ to: `fcm:${OK2}` }), topic)))));
      expect(outcomes.every((o) => o.outcome === "delivered")).toBe(true);
      expect(google.tokenRequests.length - tokensBefore).toBe(1);
      expect(new Set(google.sends.slice(-40).map((s) => s.bearer)).size).toBe(1);
    } finally {
      await ch.close();
    }
  });

  it("the access token is fetched anew 60 s before it expires", async () => {
    // The channel's clock starts 3550 s ago, so each assertion it signs is still valid now.
    const start = Date.now() - 3550_000;
    let now = start;
    const ch = new FcmChannel(undefined, { now: () => now });
    try {
      google.expiresIn = 3600;
      const tokensBefore = google.tokenRequests.length;
      await ch.push(message(), topic);
      now = start + 3530_000;
      await ch.push(message(), topic);
      expect(google.tokenRequests.length - tokensBefore).toBe(1);
      now = start + 3545_000;
      await ch.push(message(), topic);
      expect(google.tokenRequests.length - tokensBefore).toBe(2);
      const [a, b, c] = google.sends.slice(-3);
      expect(b!.bearer).toBe(a!.bearer);
      expect(c!.bearer).not.toBe(a!.bearer);
    } finally {
      await ch.close();
    }
  });

  it("401 UNAUTHENTICATED drops the access token: a new one is fetched and the push sent again", async () => {
    const ch = new FcmChannel();
    try {
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      google.revokeAll();
      const tokensBefore = google.tokenRequests.length;
      const before = google.sends.length;
      const o = await ch.push(message(), topic);
      expect(o).toMatchObject({ outcome: "delivered" });
      expect(google.tokenRequests.length - tokensBefore).toBe(1);
      expect(google.violations).toEqual([expect.stringContaining("send: UNAUTHENTICATED")]);
      expect(google.sends.slice(before).map((s) => s.bearer)).toEqual([google.tokenRequests.at(-1)!.issued]);
      expectNoSecrets(o);
    } finally {
      await ch.close();
    }
  });

  it("maps FCM's documented errors: UNREGISTERED is a dead token, QUOTA_EXCEEDED/UNAVAILABLE/INTERNAL retries, INVALID_ARGUMENT and SENDER_ID_MISMATCH dead letters", async () => {
    const ch = new FcmChannel();
    try {
      const gone = await ch.push(message({ to: `fcm:${GONE}` }), topic);
      expect(gone).toEqual({ outcome: "delivered", nowhere: true, detail: expect.stringContaining("fcm-gone… is dead (FCM answered 404 NOT_FOUND UNREGISTERED: Requested entity was not found.)") });
      const invalid = await ch.push(message({ to: `fcm:${INVALID}` }), topic);
      expect(invalid).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/\(400 INVALID_ARGUMENT: The registration token is not a valid FCM registration token\): the registration token or the payload may be invalid/) });
      const busy = await ch.push(message({ to: `fcm:${BUSY}` }), topic);
      expect(busy).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 429 RESOURCE_EXHAUSTED QUOTA_EXCEEDED"), retryAfterMs: 9000 });
      const down = await ch.push(message({ to: `fcm:${DOWN}` }), topic);
      expect(down).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 503 UNAVAILABLE") });
      const flaky = await ch.push(message({ to: `fcm:${FLAKY}` }), topic);
      expect(flaky).toEqual({ outcome: "retry", reason: expect.stringContaining("answered 500 INTERNAL") });
      const sender = await ch.push(message({ to: `fcm:${OTHER_SENDER}` }), topic);
      expect(sender).toEqual({ outcome: "dead", reason: "rejected", error: expect.stringContaining(`SENDER_ID_MISMATCH: SenderId mismatch): the registration token belongs to another Firebase project than ${PROJECT}`) });
      expect(google.violations).toEqual([]);
      expectNoSecrets(gone, invalid, busy, down, flaky, sender);
    } finally {
      await ch.close();
    }
  });

  it("a project the service account may not send for is a dead letter naming the project and the account", async () => {
    const ch = new FcmChannel();
    try {
      const o = await ch.push(message(), { ...topic, projectId: "someone-elses" });
      expect(o).toEqual({
        outcome: "dead",
        reason: "rejected",
        error: expect.stringContaining(`(403 PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied on resource 'projects/someone-elses' (or it may not exist).): service account ${CLIENT_EMAIL} may not send for project someone-elses`),
      });
      expectNoSecrets(o);
    } finally {
      await ch.close();
    }
  });

  it("a token endpoint that refuses the assertion is a dead letter; one that is down or unreachable a retry", async () => {
    const ch = new FcmChannel();
    try {
      // A key of the right shape that is not the account's: Google answers invalid_grant.
      const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      const wrongKey = await ch.push(message(), { ...topic, serviceAccountFile: await account("wrong-key.json", { private_key: other }) });
      expect(wrongKey).toEqual({
        outcome: "dead",
        reason: "rejected",
        error: expect.stringMatching(new RegExp(`refused the assertion of service account ${CLIENT_EMAIL} \\(400 invalid_grant: Invalid JWT Signature.\\).*fix serviceAccountFile ${dir}/wrong-key.json`)),
      });
      expect(JSON.stringify(wrongKey)).not.toContain(other.split("\n")[2]!);
      google.violations.length = 0;

      google.tokenAnswer = () => ({ status: 503, body: { error: "temporarily_unavailable" }, headers: { "retry-after": "4" } });
      const down = await ch.push(message(), topic);
      expect(down).toEqual({ outcome: "retry", reason: expect.stringContaining("/token answered 503 temporarily_unavailable"), retryAfterMs: 4000 });
      google.tokenAnswer = () => undefined;

      const unreachable = await ch.push(message(), { ...topic, serviceAccountFile: await account("unreachable.json", { token_uri: "https://127.0.0.1:1/token" }) });
      expect(unreachable).toMatchObject({ outcome: "retry", reason: expect.stringContaining("the token endpoint https://127.0.0.1:1/token failed: ") });
      expect(await ch.push(message(), topic)).toMatchObject({ outcome: "delivered" });
      expectNoSecrets(wrongKey, down, unreachable);
    } finally {
      await ch.close();
    }
  });

  it("a service-account file that is missing, not JSON, not a service account or lacks a field is a dead letter naming the file and the field, never the key", async () => {
    const ch = new FcmChannel();
    try {
      const tokensBefore = google.tokenRequests.length;
      const missing = join(dir, "nowhere.json");
      expect(await ch.push(message(), { ...topic, serviceAccountFile: missing })).toMatchObject({
        outcome: "dead",
        reason: "rejected",
        error: expect.stringContaining(`cannot read the FCM service account file ${missing} (serviceAccountFile): ENOENT`),
      });
      const pemFile = join(dir, "key.pem");
      const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      await writeFile(pemFile, pem);
      const notJson = await ch.push(message(), { ...topic, serviceAccountFile: pemFile });
      expect(notJson).toMatchObject({ outcome: "dead", error: expect.stringContaining(`${pemFile} (serviceAccountFile) is not a JSON object`) });
      expect(JSON.stringify(notJson)).not.toMatch(/BEGIN|PRIVATE/);
      expect(JSON.stringify(notJson)).not.toContain(pem.split("\n")[1]!);
      const user = await ch.push(message(), { ...topic, serviceAccountFile: await account("user.json", { type: "authorized_user" }) });
      expect(user).toMatchObject({ outcome: "dead", error: expect.stringContaining(`is a "authorized_user" credential, not a service account key`) });
      const noKey = await ch.push(message(), { ...topic, serviceAccountFile: await account("no-key.json", { private_key: undefined, token_uri: undefined }) });
      expect(noKey).toMatchObject({ outcome: "dead", error: expect.stringContaining(`no-key.json (serviceAccountFile) has no "private_key", "token_uri"`) });
      const badKey = await ch.push(message(), { ...topic, serviceAccountFile: await account("bad-key.json", { private_key: "-----BEGIN PRIVATE KEY-----\nnot-really\n-----END PRIVATE KEY-----\n" }) });
      expect(badKey).toMatchObject({ outcome: "dead", error: expect.stringContaining(`has a "private_key" that is not an RSA private key in PKCS#8 PEM`) });
      expect(JSON.stringify(badKey)).not.toContain("not-really");
      expect(google.tokenRequests.length).toBe(tokensBefore);
      expectNoSecrets(notJson, user, noKey, badKey);
    } finally {
      await ch.close();
    }
  });

  it("an FCM that does not answer within timeoutMs, or is down, is a retry", async () => {
    const ch = new FcmChannel();
    try {
      const slow = await ch.push(message({ to: `fcm:${HANG}` }), { ...topic, timeoutMs: 300 });
      expect(slow).toEqual({ outcome: "retry", reason: expect.stringContaining("did not answer the push to fcm-hang… within 300 ms") });
      const down = await ch.push(message(), { ...topic, endpoint: "https://127.0.0.1:1" });
      expect(down).toMatchObject({ outcome: "retry", reason: expect.stringContaining("FCM https://127.0.0.1:1 failed for the push to fcm-ok-a…") });
      expect(await ch.push(message({ to: "fcm:short" }), topic)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("not an address of channel fcm") });
    } finally {
      await ch.close();
    }
  });

  it("a recipient's tokens each get the push; a dead one is removed from the registry", async () => {
    const registry = memoryRegistry({ ada: { fcm: [OK, GONE, OK2] } });
    const ch = new FcmChannel(registry);
    try {
      const before = google.sends.length;
      const o = await ch.push(message({ to: "ada" }), topic);
      expect(o).toEqual({ outcome: "delivered", removed: 1, detail: expect.stringContaining("pushed to 2 of recipient ada's 3 fcm addresses; 1 dead (fcm-gone…) removed from recipient ada") });
      expect(google.sends.slice(before).map((s) => s.token).sort()).toEqual([OK, OK2, GONE].sort());
      expect(registry.removed).toEqual([["ada", "fcm", [GONE]]]);
    } finally {
      await ch.close();
    }
  });

  it("end to end: herald publish to a recipient arrives on each device; a dead token leaves the registry; INVALID_ARGUMENT is a dead letter", async () => {
    const cluster = await startRunning({
      nodes: 1,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 5 } },
        topics: { android: { ...topic, template: { title: "Hello {{name}}", body: "Order {{order}} shipped." } } },
      },
    });
    try {
      const cli = okCli(cluster);
      await cli("recipients", "set", "ada", "--json", JSON.stringify({ fcm: [OK, GONE] }));
      const before = google.sends.length;
      const id = (await cli("publish", "android", "--to", "ada", "--data", '{"name":"Ada","order":17}')).trim().split(/\s+/).at(-1)!;
      const got = (await waitFor(() => {
        const mine = google.sends.slice(before).filter((s) => s.herald.id === id);
        return mine.length === 2 ? mine : undefined;
      }, { timeoutMs: 20_000, what: "the push at both of ada's devices" }))!;
      expect(got.map((s) => s.token).sort()).toEqual([OK, GONE].sort());
      for (const s of got) {
        expect(s.message.notification).toEqual({ title: "Hello Ada", body: "Order 17 shipped." });
        expect(s.herald).toMatchObject({ id, topic: "android", to: "ada", title: "Hello Ada", data: { name: "Ada", order: 17 } });
      }
      await waitFor(async () => JSON.parse(await cli("recipients", "get", "ada", "--json")).fcm?.length === 1, { timeoutMs: 20_000, what: "the dead token removed from ada" });
      expect(JSON.parse(await cli("recipients", "get", "ada", "--json"))).toEqual({ fcm: [OK] });

      await cli("publish", "android", "--to", `fcm:${INVALID}`, "--data", '{"name":"Bo","order":18}');
      const letters = await waitFor(async () => {
        const rows = JSON.parse((await cli("dlq", "list", "--json")) || "[]") as { topic: string; reason: string; error: string }[];
        return rows.length > 0 ? rows : undefined;
      }, { timeoutMs: 20_000, what: "the refused push as a dead letter" });
      expect(letters).toEqual([expect.objectContaining({ topic: "android", reason: "rejected", error: expect.stringContaining("400 INVALID_ARGUMENT") })]);
      expect(google.violations).toEqual([]);
      const output = cluster.nodeOutput("n1");
      expect(output).not.toContain(keySecret);
      for (const t of google.issued) expect(output).not.toContain(t);
    } finally {
      await cluster.stop();
    }
  });
});
