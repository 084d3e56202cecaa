/**
 * The `webpush` channel: pushes the push payload to browsers by Web Push (RFC 8030), encrypted for
 * each subscription (RFC 8291, aes128gcm) and signed with the topic's VAPID key (RFC 8292), with
 * the `web-push` library. `to` is a recipient id whose subscriptions the recipients registry holds
 * (each gets the push), or one `webpush:<subscription JSON>`.
 *
 * Outcomes, as RFC 8030 and the push services (Mozilla autopush, FCM) mean their answers: any 2xx
 * is `delivered` (the service has it); 404 and 410 say the subscription is gone (it is removed from
 * the registry, and the push counts as delivered nowhere); 408, 429 and 5xx are `retry`, after
 * `Retry-After` on a 429 or 503; 413 and the other 4xx (a bad VAPID signature, a malformed request)
 * are `dead` with the service's words; a connection that fails or times out is `retry`. A payload
 * the services would refuse as too large is `dead` before any request.
 *
 * The request itself is sent here rather than by `webpush.sendNotification`: the endpoint is
 * whatever URL a browser (or whoever registered the subscription) gave, so one push must not wait
 * longer than `timeoutMs` in all, nor read an unbounded answer, and the library's sender bounds
 * neither (its timeout is a socket idle timeout, and it keeps the whole body).
 */
import { createECDH } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { Agent, request } from "node:https";
import webpush from "web-push";
import type { SingleTopicConfig, WebPushTopicConfig } from "../../../runtime/config/schema.js";
import { errorText, TimeoutError } from "../../../runtime/errors.js";
import { revealSecret } from "../../../runtime/nats/connect.js";
import { webPushSubscriptionProblem, type WebPushSubscription } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";
import { pushToAddresses, type AddressOutcome, type RecipientRegistry } from "./devices.js";
import { retryAfterMs } from "./webhook.js";

/** Options of {@link WebPushChannel}. */
export interface WebPushChannelOptions {
  /** Clock, in ms since epoch, for an HTTP-date `Retry-After`. @defaultValue Date.now */
  now?: () => number;
}

/**
 * Largest encrypted body push services accept (RFC 8030 §7.2: at least 4096 bytes; Mozilla autopush
 * and FCM take no more).
 */
const MAX_BODY_BYTES = 4096;
/**
 * What aes128gcm adds to the payload in one record (RFC 8291 §4, RFC 8188 §2): a header of salt
 * (16), record size (4), key id length (1) and the sender's P-256 public key (65), then the
 * padding delimiter (1) and the AEAD tag (16).
 */
const AES128GCM_OVERHEAD = 16 + 4 + 1 + 65 + 1 + 16;
/** Largest payload, in UTF-8 bytes, that fits {@link MAX_BODY_BYTES} once encrypted: 3993. */
export const MAX_WEBPUSH_PAYLOAD_BYTES = MAX_BODY_BYTES - AES128GCM_OVERHEAD;
/** The longest TTL a push service keeps a push for: four weeks, as `ttlSec` allows. */
const MAX_TTL_SEC = 2_419_200;
const URGENCIES = ["very-low", "low", "normal", "high"] as const;
type Urgency = (typeof URGENCIES)[number];
/** Answer bytes kept to quote in an error; past this the answer is cut off and its socket dropped. */
const MAX_ANSWER_BYTES = 16 * 1024;
const SNIPPET_CHARS = 300;
/** Connections kept per push service origin and CA. */
const MAX_SOCKETS = 256;

export class WebPushChannel implements Channel {
  readonly kind = "webpush" as const;
  readonly #inFlight = new InFlight();
  readonly #now: () => number;
  /** A topic config's VAPID details, revealed and checked once. */
  readonly #vapid = new WeakMap<SingleTopicConfig, Vapid>();
  /** One keep-alive agent per CA file ("" for the system's CAs); a file is read once. */
  readonly #agents = new Map<string, Agent>();

  /** @param registry the recipients registry; without one, `to` must be a `webpush:<subscription>`. */
  constructor(
    private readonly registry?: RecipientRegistry,
    opts: WebPushChannelOptions = {},
  ) {
    this.#now = opts.now ?? Date.now;
  }

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "webpush channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  async close(): Promise<void> {
    await this.#inFlight.close();
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "webpush") return { outcome: "dead", reason: "rejected", error: `webpush channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    const options = pushOptions(msg, topic);
    if ("dead" in options) return options.dead;
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    const payload = encoded.body;
    const bytes = Buffer.byteLength(payload, "utf8");
    if (bytes > MAX_WEBPUSH_PAYLOAD_BYTES) {
      return {
        outcome: "dead",
        reason: "rejected",
        error:
          `topic ${msg.topic}: the push payload is ${bytes} bytes, over the ${MAX_WEBPUSH_PAYLOAD_BYTES} that fit the ${MAX_BODY_BYTES} bytes push services accept once encrypted; ` +
          `send less (a template that renders a short notification, and less data: the page can fetch the rest)`,
      };
    }
    let vapid: Vapid;
    let agent: Agent;
    try {
      vapid = this.#vapidOf(topic, msg.topic);
      agent = this.#agentFor(topic.caFile, msg.topic);
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: ${errorText(err)}; fix it and replay the dead letters` };
    }
    const outcome = await pushToAddresses(msg, {
      kind: "webpush",
      parse: parseSubscription,
      describe: describeEndpoint,
      send: (sub) => this.#send(sub, payload, { ...options, vapid, agent, timeoutMs: topic.timeoutMs, topic: msg.topic }),
    }, this.registry);
    return vapid.scrub(outcome);
  }

  async #send(sub: WebPushSubscription, payload: string, o: SendOptions): Promise<AddressOutcome> {
    const where = describeEndpoint(sub);
    let details: ReturnType<typeof webpush.generateRequestDetails>;
    try {
      details = webpush.generateRequestDetails(sub, payload, {
        vapidDetails: o.vapid.details,
        TTL: o.ttl,
        urgency: o.urgency,
        contentEncoding: "aes128gcm",
      });
    } catch (err) {
      // The subscription's key is not a point on P-256, say: no push to it can be encrypted.
      return { outcome: "dead", reason: "rejected", error: `topic ${o.topic}: cannot encrypt a push for the subscription ${where}: ${errorText(err)}` };
    }
    let answer: Answer;
    try {
      answer = await send(details, o.agent, o.timeoutMs);
    } catch (err) {
      if (err instanceof TimeoutError) return { outcome: "retry", reason: `the push service ${where} did not answer within ${o.timeoutMs} ms` };
      return { outcome: "retry", reason: `pushing to ${where} failed: ${describeError(err).slice(0, SNIPPET_CHARS)}` };
    }
    return classify(answer, where, o.topic, this.#now());
  }

  #vapidOf(topic: WebPushTopicConfig, name: string): Vapid {
    let v = this.#vapid.get(topic);
    if (v === undefined) {
      // Not remembered when it fails: the environment or the file may be fixed before the replay.
      v = checkVapid(topic.vapid.subject, topic.vapid.publicKey, revealSecret(topic.vapid.privateKey, `topics.${name}.vapid.privateKey`), name);
      this.#vapid.set(topic, v);
    }
    return v;
  }

  #agentFor(caFile: string | undefined, name: string): Agent {
    const key = caFile ?? "";
    let a = this.#agents.get(key);
    if (a === undefined) {
      let ca: string | undefined;
      if (caFile !== undefined) {
        try {
          ca = readFileSync(caFile, "utf8");
        } catch (err) {
          throw new Error(`topics.${name}.caFile: cannot read ${caFile}: ${errorText(err)}`);
        }
      }
      a = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(ca === undefined ? {} : { ca }) });
      this.#agents.set(key, a);
    }
    return a;
  }
}

/** A topic's VAPID details, and what takes its private key out of any text. */
interface Vapid {
  details: { subject: string; publicKey: string; privateKey: string };
  scrub(o: Outcome): Outcome;
}

/** Per message: TTL and urgency (the topic's, or the template's override). */
interface PushOptions {
  ttl: number;
  urgency: Urgency;
}

interface SendOptions extends PushOptions {
  vapid: Vapid;
  agent: Agent;
  timeoutMs: number;
  topic: string;
}

/**
 * Checks a VAPID key pair before it signs anything: a private key that is not the public key's
 * would make every push service answer 401 or 403, for reasons they do not spell out.
 */
function checkVapid(subject: string, publicKey: string, privateKey: string, name: string): Vapid {
  const raw = /^[A-Za-z0-9_-]+$/.test(privateKey) ? Buffer.from(privateKey, "base64url") : Buffer.alloc(0);
  const fix = "make a pair with npx web-push generate-vapid-keys";
  if (raw.length !== 32) throw new Error(`topics.${name}.vapid.privateKey must be the base64url of 32 bytes (${fix})`);
  let derived: string;
  try {
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(raw);
    derived = ecdh.getPublicKey().toString("base64url");
  } catch {
    throw new Error(`topics.${name}.vapid.privateKey is not a P-256 private key (${fix})`);
  }
  if (derived !== publicKey) throw new Error(`topics.${name}.vapid.privateKey is not the private key of vapid.publicKey: use the pair npx web-push generate-vapid-keys made together`);
  const scrub = (o: Outcome): Outcome => {
    if (o.outcome === "delivered") return o.detail?.includes(privateKey) ? { ...o, detail: o.detail.split(privateKey).join("***") } : o;
    const text = o.outcome === "retry" ? o.reason : o.error;
    if (!text.includes(privateKey)) return o;
    const clean = text.split(privateKey).join("***");
    return o.outcome === "retry" ? { ...o, reason: clean } : { ...o, error: clean };
  };
  return { details: { subject, publicKey, privateKey }, scrub };
}

/**
 * The message's TTL and urgency: the topic's, unless the template renders a non-empty "ttl"
 * (whole seconds) or "urgency"; an override that is neither is a render error.
 */
function pushOptions(msg: PushMessage, topic: WebPushTopicConfig): PushOptions | { dead: Outcome } {
  const { ttl, urgency } = msg.rendered;
  let ttlSec = topic.ttlSec;
  if (ttl !== undefined && ttl.trim() !== "") {
    const t = ttl.trim();
    if (!/^\d{1,7}$/.test(t) || Number(t) > MAX_TTL_SEC) {
      return { dead: { outcome: "dead", reason: "render", error: `topic ${msg.topic}: the template's "ttl" rendered ${JSON.stringify(ttl.slice(0, 40))}; it must be whole seconds from 0 to ${MAX_TTL_SEC} (or empty for the topic's ttlSec)` } };
    }
    ttlSec = Number(t);
  }
  let u: Urgency = topic.urgency;
  if (urgency !== undefined && urgency.trim() !== "") {
    const v = urgency.trim();
    if (!(URGENCIES as readonly string[]).includes(v)) {
      return { dead: { outcome: "dead", reason: "render", error: `topic ${msg.topic}: the template's "urgency" rendered ${JSON.stringify(urgency.slice(0, 40))}; it must be one of ${URGENCIES.join(", ")} (or empty for the topic's urgency)` } };
    }
    u = v as Urgency;
  }
  return { ttl: ttlSec, urgency: u };
}

/** A subscription written in `to` (after `webpush:`): PushSubscription.toJSON(), as JSON. */
function parseSubscription(text: string): WebPushSubscription | { problem: string } {
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch {
    return { problem: 'it must be a subscription as JSON: webpush:{"endpoint":"https://…","keys":{"p256dh":"…","auth":"…"}}' };
  }
  const problem = webPushSubscriptionProblem(s);
  if (problem !== undefined) return { problem };
  const { endpoint, keys } = s as WebPushSubscription;
  return { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
}

/**
 * A subscription as texts name it: the push service's origin and the endpoint's last characters.
 * The rest of the endpoint is a capability (and the keys are the browser's secrets).
 */
function describeEndpoint(sub: WebPushSubscription): string {
  try {
    const url = new URL(sub.endpoint);
    const path = `${url.pathname}${url.search}`;
    return path.length <= 9 ? `${url.origin}${path}` : `${url.origin}/…${path.slice(-8)}`;
  } catch {
    return "(an endpoint that is not a URL)";
  }
}

/** A push service's answer: status, headers, and the first {@link MAX_ANSWER_BYTES} of its body. */
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * Sends the request web-push made, within `timeoutMs` in all: a service that has not answered by
 * then is a {@link TimeoutError}; one that answered but is still sending its body is cut off there
 * (its status is what counts).
 */
function send(details: ReturnType<typeof webpush.generateRequestDetails>, agent: Agent, timeoutMs: number): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const url = new URL(details.endpoint);
    let answered: ((cut: boolean) => void) | undefined;
    const req = request(url, { method: details.method, headers: details.headers as Record<string, string | number>, agent }, (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      answered = (cut) => {
        clearTimeout(timer);
        if (cut) res.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString("utf8") });
      };
      res.on("data", (chunk: Buffer) => {
        if (kept >= MAX_ANSWER_BYTES) return;
        chunks.push(chunk);
        kept += chunk.length;
        // Enough to quote: the rest is not read, and the connection is not reused.
        if (kept >= MAX_ANSWER_BYTES) answered!(true);
      });
      res.on("end", () => answered!(false));
      res.on("close", () => answered!(false));
      res.on("error", () => answered!(false));
    });
    const timer = setTimeout(() => (answered ? answered(true) : req.destroy(new TimeoutError(`POST ${url.origin}`, timeoutMs))), timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      // After an answer the promise is settled and this changes nothing.
      reject(err);
    });
    req.end(details.body ?? undefined);
  });
}

/** What a push service's answer means (RFC 8030 §5, §6.2; Mozilla autopush and FCM use the same codes). */
function classify(a: Answer, where: string, topic: string, nowMs: number): AddressOutcome {
  const s = a.status;
  if (s >= 200 && s < 300) return { outcome: "delivered", detail: `${where} answered ${s}` };
  const snippet = a.text.replace(/\s+/g, " ").trim();
  const said = snippet === "" ? "" : `: ${snippet.length > SNIPPET_CHARS ? `${snippet.slice(0, SNIPPET_CHARS)}…` : snippet}`;
  if (s === 404 || s === 410) return { outcome: "gone", reason: `the push service answered ${s}: the subscription expired or the browser unsubscribed` };
  if (s === 408 || s === 429 || s >= 500) {
    const header = a.headers["retry-after"];
    const after = s === 429 || s === 503 ? retryAfterMs(typeof header === "string" ? header : null, nowMs) : undefined;
    const reason = `the push service ${where} answered ${s}${s === 429 ? " (too many pushes)" : ""}${said}`;
    return after === undefined ? { outcome: "retry", reason } : { outcome: "retry", reason, retryAfterMs: after };
  }
  if (s === 413) {
    return { outcome: "dead", reason: "rejected", error: `topic ${topic}: the push service ${where} answered 413, the payload is too large for it${said}; send less (a template that renders a short notification)` };
  }
  const hint =
    s === 401 || s === 403
      ? " (the VAPID signature was refused: the subscription may have been made with another applicationServerKey than topics." + topic + ".vapid.publicKey)"
      : s >= 300 && s < 400
        ? " (push services do not redirect; redirects are not followed)"
        : "";
  return { outcome: "dead", reason: "rejected", error: `topic ${topic}: the push service ${where} refused the push (${s})${hint}${said}` };
}

/** The useful text of a request error, with its causes. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err instanceof AggregateError && err.message === "") return err.errors.map(describeError).join("; ");
  const own = err.message || (err as { code?: string }).code || err.name;
  return err.cause === undefined ? own : `${own}: ${describeError(err.cause)}`;
}
