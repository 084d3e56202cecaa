/**
 * A Web Push service on loopback, over HTTPS with a certificate of the test CA, that checks every
 * push as the protocol documents it before it answers: a POST with a `TTL` header, an `Urgency`
 * one of RFC 8030's when sent, `Content-Encoding: aes128gcm`, and `Authorization: vapid t=<JWT>,
 * k=<key>` (RFC 8292) whose JWT is signed ES256 by k, for this origin, expiring within 24 hours,
 * from the expected subject and key. It then decrypts the body for the subscription (RFC 8291, with
 * `http_ece`) and keeps the text. A push that breaks a rule is answered 400 with the rule, and a
 * body over 4096 bytes 413, as real services do; otherwise it answers what the test scripted, 201
 * by default.
 */
import { createECDH, randomBytes, type ECDH } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createServer } from "node:https";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { importJWK, jwtVerify } from "jose";
import type { WebPushSubscription } from "../../runtime/pipeline/recipients.js";

const ece = createRequire(import.meta.url)("http_ece") as {
  decrypt(buffer: Buffer, params: { version: "aes128gcm"; privateKey: ECDH; authSecret: Buffer }): Buffer;
};

/** A push the service took in (whatever it answered). */
export interface ReceivedPush {
  /** Which subscription it was for (the endpoint's last path segment). */
  sub: string;
  ttl: number;
  urgency: string | undefined;
  /** Size of the encrypted body. */
  bodyBytes: number;
  /** The decrypted payload, as text. */
  payload: string;
  /** The status the service answered. */
  status: number;
  /** `performance.now()` when the request arrived. */
  at: number;
}

/** A scripted answer. */
export interface ServiceAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface PushService {
  origin: string;
  /** Every push that passed the protocol checks. */
  pushes: ReceivedPush[];
  /** Every rule a push broke (each was answered 400). */
  problems: string[];
  /** Requests of any kind. */
  requests: number;
  /** A new subscription at this service: an ECDH key pair and an auth secret, as a browser makes. */
  subscribe(): { id: string; subscription: WebPushSubscription };
  /** Answers to the next pushes for subscription `id`, in order (201 once they are used up). */
  script(id: string, ...answers: ServiceAnswer[]): void;
  /** The answer to every push for `id` from now on; undefined: back to the script. */
  always(id: string, answer: ServiceAnswer | undefined): void;
  /** The pushes for `id` answered 2xx, decrypted and parsed. */
  delivered(id: string): Record<string, unknown>[];
  close(): Promise<void>;
}

/** What the service expects of every push's VAPID claims. */
export interface Expect {
  subject: string;
  publicKey: string;
}

const URGENCIES = ["very-low", "low", "normal", "high"];
/** RFC 8292 §2: the JWT's exp must be no more than 24 hours from the request. */
const MAX_EXP_SEC = 24 * 3600;

export async function startPushService(pki: { serverCert: string; serverKey: string }, expect: Expect): Promise<PushService> {
  const subs = new Map<string, { ecdh: ECDH; auth: Buffer }>();
  const scripts = new Map<string, ServiceAnswer[]>();
  const fixed = new Map<string, ServiceAnswer>();
  let origin = "";
  const svc: PushService = {
    origin: "",
    pushes: [],
    problems: [],
    requests: 0,
    subscribe() {
      const id = randomBytes(12).toString("base64url");
      const ecdh = createECDH("prime256v1");
      ecdh.generateKeys();
      const auth = randomBytes(16);
      subs.set(id, { ecdh, auth });
      return { id, subscription: { endpoint: `${origin}/push/${id}`, keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: auth.toString("base64url") } } };
    },
    script: (id, ...answers) => scripts.set(id, [...(scripts.get(id) ?? []), ...answers]),
    always: (id, answer) => (answer === undefined ? fixed.delete(id) : fixed.set(id, answer)),
    delivered: (id) => svc.pushes.filter((p) => p.sub === id && p.status >= 200 && p.status < 300).map((p) => JSON.parse(p.payload) as Record<string, unknown>),
    close: async () => undefined,
  };

  const server = createServer({ key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }, (req, res) => {
    const at = performance.now();
    svc.requests++;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      check(req, body).then(
        ({ sub, ttl, urgency, payload }) => {
          const answer: ServiceAnswer = body.length > 4096 ? { status: 413, body: "payload too large" } : (fixed.get(sub) ?? scripts.get(sub)?.shift() ?? { status: 201 });
          svc.pushes.push({ sub, ttl, urgency, bodyBytes: body.length, payload, status: answer.status, at });
          res.writeHead(answer.status, { "content-type": "text/plain", ...answer.headers });
          res.end(answer.body ?? "");
        },
        (err: Error) => {
          svc.problems.push(err.message);
          res.writeHead(400, { "content-type": "text/plain" });
          res.end(`bad push: ${err.message}`);
        },
      );
    });
  });

  /** The protocol's rules, in the order a push service applies them. */
  async function check(req: IncomingMessage, body: Buffer) {
    if (req.method !== "POST") throw new Error(`method ${req.method}, not POST`);
    const id = /^\/push\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "")?.[1];
    const keys = id === undefined ? undefined : subs.get(id);
    if (id === undefined || keys === undefined) throw new Error(`no subscription at ${req.url}`);
    const ttl = req.headers.ttl;
    if (typeof ttl !== "string" || !/^\d+$/.test(ttl)) throw new Error(`TTL header ${JSON.stringify(ttl)} is not whole seconds`);
    const urgency = req.headers.urgency;
    if (urgency !== undefined && (typeof urgency !== "string" || !URGENCIES.includes(urgency))) throw new Error(`Urgency ${JSON.stringify(urgency)} is not one of RFC 8030's`);
    if (req.headers["content-encoding"] !== "aes128gcm") throw new Error(`Content-Encoding ${JSON.stringify(req.headers["content-encoding"])}, not aes128gcm`);
    await checkVapid(req.headers.authorization);
    let payload: string;
    try {
      payload = ece.decrypt(body, { version: "aes128gcm", privateKey: keys.ecdh, authSecret: keys.auth }).toString("utf8");
    } catch (err) {
      throw new Error(`the body does not decrypt for the subscription: ${(err as Error).message}`);
    }
    JSON.parse(payload);
    return { sub: id, ttl: Number(ttl), urgency, payload };
  }

  async function checkVapid(authorization: string | undefined): Promise<void> {
    const m = /^vapid t=([A-Za-z0-9_.-]+), ?k=([A-Za-z0-9_-]+)$/.exec(authorization ?? "");
    if (!m) throw new Error(`Authorization ${JSON.stringify(authorization)} is not "vapid t=<JWT>, k=<key>"`);
    const [, jwt, k] = m as unknown as [string, string, string];
    if (k !== expect.publicKey) throw new Error(`k is not the application server's public key`);
    const point = Buffer.from(k, "base64url");
    if (point.length !== 65 || point[0] !== 4) throw new Error("k is not an uncompressed P-256 point");
    const key = await importJWK({ kty: "EC", crv: "P-256", x: point.subarray(1, 33).toString("base64url"), y: point.subarray(33).toString("base64url") }, "ES256");
    const { payload } = await jwtVerify(jwt, key, { algorithms: ["ES256"], audience: origin, subject: expect.subject, requiredClaims: ["exp"] }).catch((err: Error) => {
      throw new Error(`the VAPID JWT does not verify: ${err.message}`);
    });
    if (payload.exp! > Math.floor(Date.now() / 1000) + MAX_EXP_SEC) throw new Error("the VAPID JWT expires more than 24 hours from now");
  }

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  origin = svc.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  svc.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return svc;
}
