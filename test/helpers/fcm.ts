/**
 * A loopback Google: one HTTPS server playing both the OAuth2 token endpoint (the JWT-bearer
 * grant, RFC 7523: the assertion's RS256 signature verified with the service account's public key,
 * its iss, scope, aud and lifetime checked, an access token issued with expires_in) and FCM's HTTP
 * v1 `messages:send` (the bearer checked against the tokens it issued, the message's shape checked
 * as FCM's reference describes it). It answers what Google documents for what it finds wrong, and
 * otherwise as the test scripts per registration token.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { jwtVerify, type CryptoKey, type JWTPayload } from "jose";

export const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

export interface FcmSend {
  token: string;
  headers: IncomingHttpHeaders;
  /** The access token it carried. */
  bearer: string;
  message: Record<string, any>;
  /** message.data.herald, parsed. */
  herald: Record<string, any>;
  status: number;
}

/** A scripted FCM answer: HTTP status, google.rpc status, FcmError code; or no answer at all. */
export type FcmAnswer = { status: number; rpc: string; errorCode?: string; message?: string; headers?: Record<string, string> } | "hang";

export interface FakeGoogle {
  origin: string;
  tokenUri: string;
  /** Assertions the token endpoint accepted or refused, with their claims. */
  tokenRequests: { claims?: JWTPayload; issued?: string; status: number }[];
  sends: FcmSend[];
  violations: string[];
  /** Every access token issued, for the no-secrets checks. */
  issued: string[];
  /** expires_in of the next tokens, in seconds. */
  expiresIn: number;
  /** Scripted answer of the token endpoint (undefined: verify and issue). */
  tokenAnswer: () => { status: number; body: Record<string, unknown>; headers?: Record<string, string> } | undefined;
  /** The scripted answer to the `nth` (0-based) valid send for a registration token; undefined: 200. */
  answer: (token: string, nth: number) => FcmAnswer | undefined;
  /** Revokes every access token issued so far (sends with them get 401 UNAUTHENTICATED). */
  revokeAll(): void;
  close(): Promise<void>;
}

export async function startFakeGoogle(opts: { key: string; cert: string; publicKey: CryptoKey; clientEmail: string; projectId: string }): Promise<FakeGoogle> {
  const valid = new Map<string, number>();
  const perToken = new Map<string, number>();
  const hung: ServerResponse[] = [];
  const state: FakeGoogle = {
    origin: "",
    tokenUri: "",
    tokenRequests: [],
    sends: [],
    violations: [],
    issued: [],
    expiresIn: 3599,
    tokenAnswer: () => undefined,
    answer: () => undefined,
    revokeAll: () => valid.clear(),
    close: async () => undefined,
  };
  const server = createServer({ key: readFileSync(opts.key), cert: readFileSync(opts.cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url ?? "/", state.origin);
      if (req.method === "POST" && url.pathname === "/token") void token(req.headers, text, res);
      else if (req.method === "POST" && /^\/v1\/projects\/[^/]+\/messages:send$/.test(url.pathname)) send(url.pathname, req.headers, text, res);
      else json(res, 404, { error: { code: 404, message: `no ${req.method} ${url.pathname}`, status: "NOT_FOUND" } });
    });
  });

  async function token(headers: IncomingHttpHeaders, text: string, res: ServerResponse): Promise<void> {
    const scripted = state.tokenAnswer();
    if (scripted) {
      state.tokenRequests.push({ status: scripted.status });
      return json(res, scripted.status, scripted.body, scripted.headers);
    }
    const refuse = (error: string, description: string) => {
      state.violations.push(`token: ${error}: ${description}`);
      state.tokenRequests.push({ status: 400 });
      json(res, 400, { error, error_description: description });
    };
    if (headers["content-type"] !== "application/x-www-form-urlencoded") return refuse("invalid_request", `content-type ${headers["content-type"]}`);
    const form = new URLSearchParams(text);
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return refuse("unsupported_grant_type", `grant_type ${form.get("grant_type")}`);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(form.get("assertion") ?? "", opts.publicKey, { algorithms: ["RS256"], issuer: opts.clientEmail, audience: state.tokenUri }));
    } catch {
      // What Google says of a JWT signed with another key.
      return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    if (claims.scope !== SCOPE) return refuse("invalid_scope", `scope ${String(claims.scope)}`);
    if (typeof claims.iat !== "number" || typeof claims.exp !== "number" || claims.exp - claims.iat > 3600 || claims.exp <= claims.iat) {
      return refuse("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    const access = `ya29.test-${state.issued.length + 1}-${randomBytes(24).toString("base64url")}`;
    state.issued.push(access);
    valid.set(access, Date.now() + state.expiresIn * 1000);
    state.tokenRequests.push({ claims, issued: access, status: 200 });
    json(res, 200, { access_token: access, expires_in: state.expiresIn, token_type: "Bearer" });
  }

  function send(path: string, headers: IncomingHttpHeaders, text: string, res: ServerResponse): void {
    const fail = (status: number, rpc: string, message: string, errorCode?: string) => {
      state.violations.push(`send: ${rpc}${errorCode ? `/${errorCode}` : ""}: ${message}`);
      json(res, status, fcmError(status, rpc, message, errorCode));
    };
    const bearer = /^Bearer (\S+)$/.exec(String(headers.authorization ?? ""))?.[1];
    const until = bearer === undefined ? undefined : valid.get(bearer);
    if (until === undefined || until < Date.now()) {
      return fail(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
    }
    if (path !== `/v1/projects/${opts.projectId}/messages:send`) {
      return fail(403, "PERMISSION_DENIED", `Permission 'cloudmessaging.messages.create' denied on resource '${path.split("/").slice(2, 4).join("/")}' (or it may not exist).`);
    }
    if (!String(headers["content-type"]).startsWith("application/json")) return fail(400, "INVALID_ARGUMENT", `content-type ${headers["content-type"]}`);
    let message: Record<string, any>;
    try {
      message = JSON.parse(text).message;
    } catch {
      return fail(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    }
    if (typeof message !== "object" || message === null) return fail(400, "INVALID_ARGUMENT", "no message");
    if (typeof message.token !== "string") return fail(400, "INVALID_ARGUMENT", "message.token must be a string");
    const data = message.data;
    if (typeof data !== "object" || data === null || !Object.values(data).every((v) => typeof v === "string")) {
      return fail(400, "INVALID_ARGUMENT", "Invalid value at 'message.data': data values must be strings");
    }
    let herald: Record<string, any>;
    try {
      herald = JSON.parse(data.herald);
    } catch {
      return fail(400, "INVALID_ARGUMENT", "message.data.herald is not the push payload as JSON");
    }
    if (message.notification !== undefined && !Object.values(message.notification).every((v) => typeof v === "string")) return fail(400, "INVALID_ARGUMENT", "notification");
    if (!/^\d+(\.\d{1,9})?s$/.test(String(message.android?.ttl))) return fail(400, "INVALID_ARGUMENT", `Invalid value at 'message.android.ttl' (${message.android?.ttl})`);
    if (!["normal", "high"].includes(String(message.android?.priority))) return fail(400, "INVALID_ARGUMENT", `Invalid value at 'message.android.priority' (${message.android?.priority})`);
    const nth = perToken.get(message.token) ?? 0;
    perToken.set(message.token, nth + 1);
    const a = state.answer(message.token, nth);
    state.sends.push({ token: message.token, headers, bearer: bearer!, message, herald, status: a === undefined ? 200 : a === "hang" ? 0 : a.status });
    if (a === "hang") {
      hung.push(res);
      return;
    }
    if (a === undefined) return json(res, 200, { name: `projects/${opts.projectId}/messages/0:${state.sends.length}` });
    json(res, a.status, fcmError(a.status, a.rpc, a.message ?? a.rpc, a.errorCode), a.headers);
  }

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.tokenUri = `${state.origin}/token`;
  state.close = () =>
    new Promise<void>((r) => {
      for (const h of hung) h.destroy();
      server.close(() => r());
      server.closeAllConnections();
    });
  return state;
}

function fcmError(code: number, status: string, message: string, errorCode?: string): Record<string, unknown> {
  return {
    error: {
      code,
      message,
      status,
      ...(errorCode === undefined ? {} : { details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] }),
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers });
  res.end(JSON.stringify(body));
}
