/**
 * The `webhook` channel: POSTs the push payload as JSON to the topic's `url`, signed with Standard
 * Webhooks headers, over pooled keep-alive connections (see http-post.ts). Redirects are not
 * followed.
 */
import { Buffer } from "node:buffer";
import type { SingleTopicConfig } from "../../../runtime/config/schema.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";
import { TimeoutError } from "../../../runtime/errors.js";
import { closePools, InvalidRequestError, post, type PostResponse } from "./http-post.js";
import { signWebhook } from "./signature.js";

/** Options of {@link WebhookChannel}. */
export interface WebhookChannelOptions {
  /** `user-agent` of every request (a topic's `headers` may override it). @defaultValue "Herald-Webhooks/1" */
  userAgent?: string;
  /** Clock, in ms since epoch: the `webhook-timestamp` and HTTP-date `Retry-After`. @defaultValue Date.now */
  now?: () => number;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Longest wait a `Retry-After` may ask for, in ms; longer values are clamped. */
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Response bytes read to reuse the socket and quote errors; past this the body is cancelled. */
const MAX_DRAIN_BYTES = 64 * 1024;
const SNIPPET_CHARS = 200;
/**
 * A receiver that will never take a message says so with `webhook-delivery: abort` on its non-2xx
 * answer: the failure is then permanent whatever the status (README, per-topic retry schedules).
 */
const DELIVERY_HEADER = "webhook-delivery";

export class WebhookChannel implements Channel {
  readonly kind = "webhook" as const;
  readonly #userAgent: string;
  readonly #now: () => number;
  readonly #inFlight = new InFlight();
  readonly #targets = new WeakMap<SingleTopicConfig, Prepared>();

  constructor(opts: WebhookChannelOptions = {}) {
    this.#userAgent = opts.userAgent ?? "Herald-Webhooks/1";
    this.#now = opts.now ?? Date.now;
  }

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "webhook channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  /**
   * What every push of a topic shares, made once per topic config: the URL, the fixed headers, and
   * the scrubber of its secrets. A URL that cannot be used is remembered as such.
   */
  #target(topic: SingleTopicConfig & { channel: "webhook" }): Prepared {
    let t = this.#targets.get(topic);
    if (t === undefined) {
      t = prepareTarget(topic, this.#userAgent);
      this.#targets.set(topic, t);
    }
    return t;
  }

  async close(): Promise<void> {
    await this.#inFlight.close();
    await closePools();
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "webhook") {
      return { outcome: "dead", reason: "rejected", error: `webhook channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    }
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    const body = encoded.body;
    const t = this.#target(topic);
    if ("dead" in t) return { outcome: "dead", reason: "rejected", error: t.scrub(`webhook request for topic ${msg.topic} cannot be built: ${t.dead}`) };
    const { url, where, scrub, timeoutMs } = t;
    const timestampSec = Math.floor(this.#now() / 1000);
    const h: Record<string, string> = { ...t.headers, "webhook-id": msg.id, "webhook-timestamp": String(timestampSec) };
    if (topic.secret !== undefined) h["webhook-signature"] = signWebhook(topic.secret, msg.id, timestampSec, body);

    let res: PostResponse;
    try {
      res = await post(url, h, body, timeoutMs, MAX_DRAIN_BYTES);
    } catch (err) {
      if (err instanceof TimeoutError) return { outcome: "retry", reason: `${where} timed out after ${timeoutMs} ms` };
      if (err instanceof InvalidRequestError) {
        // A header value or name in the topic's config that HTTP cannot carry: permanent.
        return { outcome: "dead", reason: "rejected", error: scrub(`webhook request for topic ${msg.topic} cannot be built: ${describe(err)}`) };
      }
      return { outcome: "retry", reason: scrub(`${where} failed: ${describe(err)}`) };
    }
    return classify(res, res.text, where, this.#now(), scrub);
  }
}

/** A topic's request parts, or why its config cannot make a request (with the scrubber for that text). */
type Prepared = Target | { dead: string; scrub: (t: string) => string };

interface Target {
  url: URL;
  /** `POST origin/path`: no query string or credentials, for texts. */
  where: string;
  headers: Record<string, string>;
  timeoutMs: number;
  scrub: (text: string) => string;
}

function prepareTarget(topic: SingleTopicConfig & { channel: "webhook" }, userAgent: string): Prepared {
  // Header values and URL parameters may hold tokens, and servers echo them back in errors:
  // scrub them (and the secret) from every text we return.
  const secrets = [topic.secret, ...Object.values(topic.headers ?? {})];
  const scrub = (text: string) => secrets.reduce<string>((t, s) => (s !== undefined && s.length >= 8 ? t.split(s).join("***") : t), text);
  try {
    const url = new URL(topic.url);
    secrets.push(...url.searchParams.values(), decodeURIComponent(url.password));
    const where = `POST ${url.origin}${url.pathname}`;
    const headers: Record<string, string> = { "user-agent": userAgent };
    for (const [k, v] of Object.entries(topic.headers ?? {})) headers[k.toLowerCase()] = v;
    // Credentials in the URL are sent as basic auth, as curl does.
    if ((url.username !== "" || url.password !== "") && headers.authorization === undefined) {
      const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      headers.authorization = `Basic ${Buffer.from(user).toString("base64")}`;
    }
    url.username = url.password = "";
    headers["content-type"] = "application/json";
    return { url, where, headers, timeoutMs: topic.timeoutMs ?? DEFAULT_TIMEOUT_MS, scrub };
  } catch (err) {
    // A bad URL in the topic's config: no retry can succeed.
    return { dead: describe(err), scrub };
  }
}

function classify(res: PostResponse, text: string, where: string, nowMs: number, scrub: (t: string) => string): Outcome {
  const s = res.status;
  if (s >= 200 && s < 300) return { outcome: "delivered", detail: `${where} answered ${s}` };
  let what = `webhook answered ${s}${res.statusText ? ` ${res.statusText}` : ""} to ${where}`;
  if (s >= 300 && s < 400) {
    const location = res.header("location");
    what += ` (redirects are not followed${location ? `; location: ${location}` : ""})`;
  }
  const snippet = text.replace(/\s+/g, " ").trim();
  if (snippet !== "") what += `: ${snippet.length > SNIPPET_CHARS ? `${snippet.slice(0, SNIPPET_CHARS)}…` : snippet}`;
  what = scrub(what);
  if (res.header(DELIVERY_HEADER)?.trim().toLowerCase() === "abort") {
    return { outcome: "dead", reason: "rejected", error: `the receiver asked to stop retries (${DELIVERY_HEADER}: abort): ${what}` };
  }
  if (s === 408 || s === 429 || s >= 500) {
    const after = s === 429 || s === 503 ? retryAfterMs(res.header("retry-after") ?? null, nowMs) : undefined;
    return after === undefined ? { outcome: "retry", reason: what, status: s } : { outcome: "retry", reason: what, retryAfterMs: after, status: s };
  }
  return { outcome: "dead", reason: "rejected", error: what };
}

/**
 * `Retry-After` in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), clamped to [0, 1 h].
 * Undefined when absent or unreadable (the backoff schedule applies then).
 */
export function retryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/** The useful text of a request error, with its causes. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Happy-eyeballs failures are an AggregateError without a message of their own.
  if (err instanceof AggregateError && err.message === "") return err.errors.map(describe).join("; ");
  const own = err.message || (err as { code?: string }).code || err.name;
  return err.cause === undefined ? own : `${own}: ${describe(err.cause)}`;
}
