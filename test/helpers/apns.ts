/**
 * A loopback APNs: an HTTP/2 TLS server that checks each request as Apple's "Sending notification
 * requests to APNs" and "Establishing a token-based connection" describe it, answers what APNs
 * documents for what it finds wrong (InvalidProviderToken, ExpiredProviderToken, BadTopic, …),
 * and otherwise answers as the test scripts per device token.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureServer, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { decodeProtectedHeader, jwtVerify, type CryptoKey, type JWTPayload } from "jose";

export interface ApnsRequest {
  token: string;
  headers: IncomingHttpHeaders;
  /** The provider token as sent. */
  jwt: string;
  claims: JWTPayload;
  body: Record<string, any>;
  /** Which server session (1-based, in order of opening) carried it. */
  session: number;
  /** What the server answered. */
  status: number;
  reason?: string;
}

/** A scripted answer: a status with APNs's reason (and headers), or no answer at all. */
export type ApnsAnswer = { status: number; reason?: string; headers?: Record<string, string> } | "hang";

export interface FakeApns {
  origin: string;
  requests: ApnsRequest[];
  /** Every way a request broke the protocol (a test expects none unless it provokes one). */
  violations: string[];
  /** Sessions opened so far (the server's 'session' events). */
  sessions: number;
  /** Sessions open now. */
  live: Set<ServerHttp2Session>;
  /** Streams left unanswered ("hang"). */
  hung: ServerHttp2Stream[];
  /** The scripted answer to the `nth` (0-based) valid request for a token; undefined: 200. */
  answer: (token: string, nth: number) => ApnsAnswer | undefined;
  close(): Promise<void>;
}

const PUSH_TYPES = new Set(["alert", "background", "voip", "complication", "fileprovider", "mdm", "location", "liveactivity"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HOUR_SEC = 3600;

export async function startFakeApns(opts: { key: string; cert: string; publicKey: CryptoKey; teamId: string; keyId: string; bundleId: string }): Promise<FakeApns> {
  const state: FakeApns = { origin: "", requests: [], violations: [], sessions: 0, live: new Set(), hung: [], answer: () => undefined, close: async () => undefined };
  const perToken = new Map<string, number>();
  const sessionNo = new WeakMap<ServerHttp2Session, number>();
  const server = createSecureServer({ key: readFileSync(opts.key), cert: readFileSync(opts.cert) });
  server.on("session", (s) => {
    state.sessions++;
    sessionNo.set(s, state.sessions);
    state.live.add(s);
    s.on("close", () => state.live.delete(s));
    s.on("error", () => undefined);
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      void handle(stream, headers, Buffer.concat(chunks).toString("utf8"));
    });
  });

  async function handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, text: string): Promise<void> {
    const refuse = (status: number, reason: string, why: string) => {
      state.violations.push(`${reason}: ${why}`);
      send(stream, headers, status, reason);
    };
    if (headers[":method"] !== "POST") return refuse(405, "MethodNotAllowed", `method ${headers[":method"]}`);
    const path = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(String(headers[":path"]));
    if (!path) return refuse(404, "BadPath", `path ${headers[":path"]}`);
    const token = path[1]!;
    const auth = headers.authorization;
    if (auth === undefined) return refuse(403, "MissingProviderToken", "no authorization header");
    const m = /^bearer (\S+)$/.exec(String(auth));
    if (!m) return refuse(403, "InvalidProviderToken", `authorization ${String(auth).slice(0, 20)}…`);
    const jwt = m[1]!;
    let claims: JWTPayload;
    try {
      const header = decodeProtectedHeader(jwt);
      if (header.alg !== "ES256" || header.kid !== opts.keyId) return refuse(403, "InvalidProviderToken", `header ${JSON.stringify(header)}`);
      ({ payload: claims } = await jwtVerify(jwt, opts.publicKey, { algorithms: ["ES256"], issuer: opts.teamId }));
    } catch (err) {
      return refuse(403, "InvalidProviderToken", `JWT: ${(err as Error).message}`);
    }
    const nowSec = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== "number" || claims.iat > nowSec + 60) return refuse(403, "InvalidProviderToken", `iat ${claims.iat}`);
    if (nowSec - claims.iat > HOUR_SEC) return refuse(403, "ExpiredProviderToken", `iat ${claims.iat} is over an hour old`);
    const pushType = String(headers["apns-push-type"] ?? "");
    if (!PUSH_TYPES.has(pushType)) return refuse(400, "InvalidPushType", `apns-push-type ${pushType}`);
    if (headers["apns-topic"] === undefined) return refuse(400, "MissingTopic", "no apns-topic");
    const want = pushType === "voip" ? `${opts.bundleId}.voip` : opts.bundleId;
    if (headers["apns-topic"] !== want) return refuse(400, "BadTopic", `apns-topic ${headers["apns-topic"]}`);
    const priority = headers["apns-priority"];
    if (priority !== undefined && !["10", "5", "1"].includes(String(priority))) return refuse(400, "BadPriority", `apns-priority ${priority}`);
    if (pushType === "background" && priority === "10") return refuse(400, "BadPriority", "a background push at priority 10");
    if (!/^\d+$/.test(String(headers["apns-expiration"] ?? ""))) return refuse(400, "BadExpirationDate", `apns-expiration ${headers["apns-expiration"]}`);
    if (headers["apns-id"] !== undefined && !UUID.test(String(headers["apns-id"]))) return refuse(400, "BadMessageId", `apns-id ${headers["apns-id"]}`);
    if (text === "") return refuse(400, "PayloadEmpty", "no body");
    if (Buffer.byteLength(text) > (pushType === "voip" ? 5120 : 4096)) return refuse(413, "PayloadTooLarge", `${Buffer.byteLength(text)} bytes`);
    let body: Record<string, any>;
    try {
      body = JSON.parse(text);
    } catch {
      return refuse(400, "BadRequest", "the body is not JSON");
    }
    if (typeof body.aps !== "object" || body.aps === null) return refuse(400, "BadRequest", "no aps dictionary");
    if (headers["content-type"] !== "application/json") state.violations.push(`content-type ${headers["content-type"]}`);

    const nth = perToken.get(token) ?? 0;
    perToken.set(token, nth + 1);
    const a = state.answer(token, nth) ?? { status: 200 };
    const req: ApnsRequest = { token, headers, jwt, claims, body, session: sessionNo.get(stream.session as ServerHttp2Session) ?? 0, status: a === "hang" ? 0 : a.status, ...(a !== "hang" && a.reason ? { reason: a.reason } : {}) };
    state.requests.push(req);
    if (a === "hang") {
      state.hung.push(stream);
      return;
    }
    send(stream, headers, a.status, a.reason, a.headers);
  }

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of state.live) s.destroy();
      server.close(() => r());
    });
  return state;
}

function send(stream: ServerHttp2Stream, req: IncomingHttpHeaders, status: number, reason?: string, headers: Record<string, string> = {}): void {
  if (stream.destroyed) return;
  const id = typeof req["apns-id"] === "string" ? req["apns-id"] : randomUUID();
  stream.respond({ ":status": status, "apns-id": id, ...(status === 200 ? { "apns-unique-id": randomUUID() } : { "content-type": "application/json" }), ...headers });
  if (status === 200) stream.end();
  else stream.end(JSON.stringify(status === 410 ? { reason: reason ?? "Unregistered", timestamp: Date.now() } : { reason }));
}
