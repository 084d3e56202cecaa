/**
 * The `fcm` channel: pushes through Firebase Cloud Messaging's HTTP v1 API, `POST
 * /v1/projects/<projectId>/messages:send` with a service account's OAuth2 access token
 * (fcm-token.ts), over pooled keep-alive connections (undici, one pool per origin and CA). `to`
 * is a recipient id whose FCM registration tokens the recipients registry holds, or one
 * `fcm:<registration token>`.
 *
 * The message is `{ token, notification?: { title, body }, data: { herald: <push payload as
 * JSON> }, android: { ttl, priority } }`: FCM data values are strings, so the push payload travels
 * whole as one.
 *
 * Outcomes, as FCM's ErrorCode reference means them: 200 is `delivered`; 404 / UNREGISTERED means
 * the token is dead (removed from the registry, delivered nowhere); 401 UNAUTHENTICATED /
 * THIRD_PARTY_AUTH_ERROR drops the access token and sends once more with a new one; 429, 5xx, a
 * failed connection or a timeout is `retry` (after Retry-After when FCM sends one); 400
 * INVALID_ARGUMENT, 403 SENDER_ID_MISMATCH / PERMISSION_DENIED and every other refusal is `dead`
 * with FCM's words and what to fix. A token endpoint that refuses the assertion is `dead` (the
 * service account needs fixing); one that is down is `retry`.
 */
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { Pool } from "undici";
import type { FcmTopicConfig, SingleTopicConfig } from "../../../runtime/config/schema.js";
import { errorText, TimeoutError } from "../../../runtime/errors.js";
import { FCM_TOKEN } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";
import { pushToAddresses, type AddressOutcome, type RecipientRegistry } from "./devices.js";
import { AccessTokenError, AccessTokens, type ServiceAccount, type TokenPost } from "./fcm-token.js";
import { post, type PostResponse } from "./http-post.js";
import { retryAfterMs } from "./webhook.js";

/** Options of {@link FcmChannel}. */
export interface FcmChannelOptions {
  /** Clock, in ms since epoch: the assertion's `iat`, the access token's expiry, HTTP-date `Retry-After`. @defaultValue Date.now */
  now?: () => number;
}

/** Connections kept per origin; more concurrent pushes queue for a free one. */
const MAX_CONNECTIONS = 64;
/** Answer bytes kept: FCM's and the token endpoint's answers are small JSON. */
const MAX_ANSWER_BYTES = 64 * 1024;
const SNIPPET_CHARS = 300;

export class FcmChannel implements Channel {
  readonly kind = "fcm" as const;
  readonly #inFlight = new InFlight();
  /** One pool per origin and CA, for FCM and the token endpoints alike. */
  readonly #pools = new Map<string, Pool>();
  readonly #tokens: AccessTokens;
  readonly #now: () => number;

  /** @param registry the recipients registry; without one, `to` must be `fcm:<registration token>`. */
  constructor(
    private readonly registry?: RecipientRegistry,
    opts: FcmChannelOptions = {},
  ) {
    this.#now = opts.now ?? Date.now;
    this.#tokens = new AccessTokens(this.#now);
  }

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "fcm channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  /** Waits for the pushes in flight, then closes the pools. */
  async close(): Promise<void> {
    await this.#inFlight.close();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "fcm") return { outcome: "dead", reason: "rejected", error: `fcm channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    let account: ServiceAccount;
    try {
      account = await this.#tokens.account(topic.serviceAccountFile);
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: ${errorText(err)}; fix it and replay the dead letters` };
    }
    const url = new URL(`${topic.endpoint.replace(/\/+$/, "")}/v1/projects/${topic.projectId}/messages:send`);
    let send: Pool;
    let tokenPost: TokenPost;
    try {
      send = this.#pool(url.origin, topic.caFile, false);
      // The token endpoint is Google's even when FCM is a sandbox: the CA is added to the system's there.
      const tokenPool = this.#pool(account.tokenUri.origin, topic.caFile, true);
      tokenPost = (u, headers, body) => post(u, headers, body, topic.timeoutMs, MAX_ANSWER_BYTES, { dispatcher: tokenPool, keepOkBody: true });
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: cannot read the CA file ${topic.caFile} (caFile): ${errorText(err)}; fix caFile and replay the dead letters` };
    }
    const { title, body } = msg.rendered;
    const notification = title === undefined && body === undefined ? undefined : { ...(title === undefined ? {} : { title }), ...(body === undefined ? {} : { body }) };
    const message = (token: string) =>
      JSON.stringify({
        message: {
          token,
          ...(notification === undefined ? {} : { notification }),
          data: { herald: encoded.body },
          android: { ttl: `${topic.ttlSec}s`, priority: topic.priority },
        },
      });
    return pushToAddresses(
      msg,
      {
        kind: "fcm",
        parse: (text) => (FCM_TOKEN.test(text) ? text : { problem: "an FCM registration token is the text the app got from getToken() (letters, digits, and _ : . -)" }),
        describe: shortToken,
        send: (token) => this.#send(token, message(token), url, send, tokenPost, topic, account),
      },
      this.registry,
    );
  }

  /** One device's push; sent once more with a new access token if FCM refuses the one it had. */
  async #send(token: string, body: string, url: URL, pool: Pool, tokenPost: TokenPost, topic: FcmTopicConfig, account: ServiceAccount): Promise<AddressOutcome> {
    const where = `FCM ${url.origin}`;
    const device = shortToken(token);
    for (let attempt = 0; ; attempt++) {
      let bearer: string;
      try {
        bearer = await this.#tokens.token(account, tokenPost, topic.timeoutMs);
      } catch (err) {
        if (err instanceof AccessTokenError) return err.outcome;
        return { outcome: "retry", reason: `cannot get an access token for service account ${account.clientEmail}: ${errorText(err)}` };
      }
      let res: PostResponse;
      try {
        res = await post(url, { authorization: `Bearer ${bearer}`, "content-type": "application/json; charset=utf-8" }, body, topic.timeoutMs, MAX_ANSWER_BYTES, { dispatcher: pool, keepOkBody: true });
      } catch (err) {
        if (err instanceof TimeoutError) return { outcome: "retry", reason: `${where} did not answer the push to ${device} within ${topic.timeoutMs} ms` };
        return { outcome: "retry", reason: scrub(`${where} failed for the push to ${device}: ${errorText(err)}`, bearer) };
      }
      const o = fcmOutcome(res, { where, device, projectId: topic.projectId, clientEmail: account.clientEmail, nowMs: this.#now() });
      if (typeof o !== "string") return scrubOutcome(o, bearer);
      this.#tokens.drop(account, bearer);
      if (attempt >= 1) {
        const why =
          o === "THIRD_PARTY_AUTH_ERROR"
            ? "the APNs key or web push credentials the Firebase project holds (Project settings › Cloud Messaging) are invalid or missing"
            : `check service account ${account.clientEmail} belongs to project ${topic.projectId}, and this host's clock`;
        return { outcome: "retry", reason: `${where} answered 401 ${o} again, with a new access token, to the push to ${device}: ${why}` };
      }
    }
  }

  #pool(origin: string, caFile: string | undefined, withSystemCas: boolean): Pool {
    const key = JSON.stringify([origin, caFile ?? null, withSystemCas]);
    let pool = this.#pools.get(key);
    if (!pool) {
      const ca = caFile === undefined ? undefined : readFileSync(caFile, "utf8");
      pool = new Pool(origin, {
        connections: MAX_CONNECTIONS,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        ...(ca === undefined ? {} : { connect: { ca: withSystemCas ? [...rootCertificates, ca] : ca } }),
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }
}

const shortToken = (token: string) => `${token.slice(0, 8)}…`;

/** What an answer is about: the origin, the device (cut short), and who sends for which project. */
export interface FcmContext {
  where: string;
  device: string;
  projectId: string;
  clientEmail: string;
  nowMs: number;
}

/**
 * What FCM's answer means: an outcome, `gone` for a dead registration token, or the error code of
 * a 401 (drop the access token and send again).
 */
export function fcmOutcome(res: PostResponse, c: FcmContext): AddressOutcome | "UNAUTHENTICATED" | "THIRD_PARTY_AUTH_ERROR" {
  const s = res.status;
  if (s >= 200 && s < 300) {
    const name = (parseJson(res.text) as { name?: unknown } | undefined)?.name;
    return { outcome: "delivered", detail: `${c.where} took the push to ${c.device}${typeof name === "string" ? ` as ${name.slice(0, 200)}` : ""}` };
  }
  const e = errorOf(res.text);
  const code = e.errorCode ?? e.status;
  const said = `${s}${[...new Set([e.status, e.errorCode].filter(Boolean))].map((x) => ` ${x}`).join("")}${e.message ? `: ${e.message}` : ""}`;
  if (s === 404 || code === "UNREGISTERED") return { outcome: "gone", reason: `FCM answered ${said}` };
  if (s === 401 || code === "UNAUTHENTICATED" || code === "THIRD_PARTY_AUTH_ERROR") return code === "THIRD_PARTY_AUTH_ERROR" ? code : "UNAUTHENTICATED";
  if (s === 408 || s === 429 || s >= 500 || code === "QUOTA_EXCEEDED" || code === "UNAVAILABLE" || code === "INTERNAL") {
    const after = retryAfterMs(res.header("retry-after") ?? null, c.nowMs);
    const o = { outcome: "retry" as const, reason: `${c.where} answered ${said} to the push to ${c.device}` };
    return after === undefined ? o : { ...o, retryAfterMs: after };
  }
  const refused = `${c.where} refused the push to ${c.device} (${said})`;
  let fix: string | undefined;
  if (code === "SENDER_ID_MISMATCH") fix = `the registration token belongs to another Firebase project than ${c.projectId}: check projectId, or the app's Firebase configuration`;
  else if (s === 403 || code === "PERMISSION_DENIED") {
    fix = `service account ${c.clientEmail} may not send for project ${c.projectId}: check projectId, give the account the role Firebase Cloud Messaging API Admin in that project, and enable the Firebase Cloud Messaging API there`;
  } else if (s === 400 || code === "INVALID_ARGUMENT") fix = "the registration token or the payload may be invalid (a token from another app, or a message over FCM's 4096 bytes)";
  return { outcome: "dead", reason: "rejected", error: fix ? `${refused}: ${fix}; then replay the dead letter` : `${refused}; fix what FCM names, then replay the dead letter` };
}

/** FCM's `{ error: { code, status, message, details: [{ "@type": …FcmError, errorCode }] } }`, cut to what is quoted. */
function errorOf(text: string): { status?: string; errorCode?: string; message?: string } {
  const e = (parseJson(text) as { error?: unknown } | undefined)?.error;
  if (typeof e !== "object" || e === null) {
    const snippet = text.replace(/\s+/g, " ").trim().slice(0, SNIPPET_CHARS);
    return snippet ? { message: snippet } : {};
  }
  const { status, message, details } = e as { status?: unknown; message?: unknown; details?: unknown };
  const word = (x: unknown) => (typeof x === "string" && /^[A-Z_]{1,64}$/.test(x) ? x : undefined);
  const fcmError = Array.isArray(details)
    ? (details as { "@type"?: unknown; errorCode?: unknown }[]).find((d) => typeof d?.["@type"] === "string" && d["@type"].endsWith("google.firebase.fcm.v1.FcmError"))
    : undefined;
  const out: { status?: string; errorCode?: string; message?: string } = {};
  const st = word(status);
  const ec = word(fcmError?.errorCode);
  if (st) out.status = st;
  if (ec) out.errorCode = ec;
  if (typeof message === "string" && message !== "") out.message = message.slice(0, SNIPPET_CHARS);
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An access token never leaves in a text, even if a server echoes it. */
const scrub = (text: string, secret: string) => text.split(secret).join("***");

function scrubOutcome(o: AddressOutcome, secret: string): AddressOutcome {
  if (o.outcome === "retry" || o.outcome === "gone") return { ...o, reason: scrub(o.reason, secret) };
  if (o.outcome === "dead") return { ...o, error: scrub(o.error, secret) };
  return o.detail === undefined ? o : { ...o, detail: scrub(o.detail, secret) };
}
