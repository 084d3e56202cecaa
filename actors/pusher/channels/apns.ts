/**
 * The `apns` channel: pushes to Apple devices through APNs, as Apple's "Sending notification
 * requests to APNs" describes it: `POST /3/device/<token>` over one long-lived HTTP/2 session per
 * origin (http2-session.ts), trusted by a provider token (apns-token.ts). `to` is a recipient id
 * whose APNs device tokens the recipients registry holds, or one `apns:<device token>`.
 *
 * The payload is `{ aps, ...pushPayload }`: the rendered `title` and `body` make `aps.alert`,
 * `sound` and `badge` their `aps` keys, and the rest of the push payload travels beside `aps` as
 * custom keys, for the app to read.
 *
 * Outcomes, as APNs means its answers: 200 is `delivered`; 410 (Unregistered, ExpiredToken) and
 * 400 BadDeviceToken / DeviceTokenNotForTopic mean the token is dead (removed from the registry,
 * delivered nowhere); 403 ExpiredProviderToken makes a new provider token and sends once more;
 * 429, 5xx, a failed connection or a timeout is `retry` (after Retry-After when APNs sends one);
 * any other refusal is `dead` with APNs's reason and what to fix.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { OutgoingHttpHeaders } from "node:http2";
import type { ApnsTopicConfig, SingleTopicConfig } from "../../../runtime/config/schema.js";
import { errorText, TimeoutError } from "../../../runtime/errors.js";
import { APNS_TOKEN } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { ProviderTokens } from "./apns-token.js";
import { InFlight, pushPayload, type Channel } from "./channel.js";
import { pushToAddresses, type AddressOutcome, type RecipientRegistry } from "./devices.js";
import { Http2Origin, type Http2Answer } from "./http2-session.js";
import { retryAfterMs } from "./webhook.js";

/** Options of {@link ApnsChannel}. */
export interface ApnsChannelOptions {
  /** Clock, in ms since epoch: the provider token's `iat` and refresh, `apns-expiration`, HTTP-date `Retry-After`. @defaultValue Date.now */
  now?: () => number;
}

/** Largest payload APNs takes, in bytes: 5120 for VoIP pushes, 4096 for every other kind. */
const MAX_PAYLOAD_BYTES = 4096;
const MAX_VOIP_PAYLOAD_BYTES = 5120;
/** Answer bytes kept: APNs answers with a small JSON reason. */
const MAX_ANSWER_BYTES = 16 * 1024;

type PushType = ApnsTopicConfig["pushType"];

/** What Apple appends to the bundle ID in `apns-topic` for each push type (an mdm push's topic is its certificate's, as configured). */
const TOPIC_SUFFIX: Partial<Record<PushType, string>> = {
  voip: ".voip",
  complication: ".complication",
  fileprovider: ".pushkit.fileprovider",
  location: ".location-query",
  liveactivity: ".push-type.liveactivity",
};

export class ApnsChannel implements Channel {
  readonly kind = "apns" as const;
  readonly #inFlight = new InFlight();
  /** One HTTP/2 session per APNs origin and CA. */
  readonly #origins = new Map<string, Http2Origin>();
  readonly #tokens: ProviderTokens;
  readonly #now: () => number;

  /** @param registry the recipients registry; without one, `to` must be `apns:<device token>`. */
  constructor(
    private readonly registry?: RecipientRegistry,
    opts: ApnsChannelOptions = {},
  ) {
    this.#now = opts.now ?? Date.now;
    this.#tokens = new ProviderTokens(this.#now);
  }

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "apns channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  /** Waits for the pushes in flight, then closes the sessions. */
  async close(): Promise<void> {
    await this.#inFlight.close();
    const origins = [...this.#origins.values()];
    this.#origins.clear();
    await Promise.all(origins.map((o) => o.close()));
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "apns") return { outcome: "dead", reason: "rejected", error: `apns channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    const payload = apnsPayload(msg, topic.pushType);
    if ("dead" in payload) return payload.dead;
    let origin: Http2Origin;
    try {
      origin = this.#origin(topic);
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: cannot read the CA file ${topic.caFile} (caFile): ${errorText(err)}; fix caFile and replay the dead letters` };
    }
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      "apns-topic": apnsTopic(topic.bundleId, topic.pushType),
      "apns-push-type": topic.pushType,
      ...(topic.priority === undefined ? {} : { "apns-priority": String(topic.priority) }),
      "apns-expiration": topic.ttlSec === 0 ? "0" : String(Math.floor(this.#now() / 1000) + topic.ttlSec),
      // The same id on every retry: Apple's delivery log shows one notification, not one per attempt.
      "apns-id": apnsId(msg.id),
      "content-type": "application/json",
    };
    return pushToAddresses(
      msg,
      {
        kind: "apns",
        parse: (text) => (APNS_TOKEN.test(text) ? text : { problem: "an APNs device token is the hex the app got from registerForRemoteNotifications (64 characters today)" }),
        describe: shortToken,
        send: (token) => this.#send(token, payload.body, headers, topic, msg.topic, origin),
      },
      this.registry,
    );
  }

  /** One device's push; sent once more with a new provider token if APNs says the one it had has expired. */
  async #send(token: string, body: string, fixed: OutgoingHttpHeaders, topic: ApnsTopicConfig, name: string, origin: Http2Origin): Promise<AddressOutcome> {
    const where = `APNs ${origin.origin}`;
    for (let attempt = 0; ; attempt++) {
      let jwt: string;
      try {
        jwt = await this.#tokens.token(topic);
      } catch (err) {
        return { outcome: "dead", reason: "rejected", error: `topic ${name}: ${errorText(err)}; fix it and replay the dead letters` };
      }
      let answer: Http2Answer;
      try {
        answer = await origin.request({ ...fixed, ":path": `/3/device/${token}`, authorization: `bearer ${jwt}` }, body, topic.timeoutMs, MAX_ANSWER_BYTES);
      } catch (err) {
        if (err instanceof TimeoutError) return { outcome: "retry", reason: `${where} did not answer the push to ${shortToken(token)} within ${topic.timeoutMs} ms` };
        return { outcome: "retry", reason: `${where} failed for the push to ${shortToken(token)}: ${errorText(err)}` };
      }
      const o = apnsOutcome(answer, where, shortToken(token), this.#now());
      if (o !== "expired-provider-token") return o;
      this.#tokens.expire(topic, jwt);
      if (attempt >= 1) {
        return { outcome: "retry", reason: `${where} refused a new provider token as expired too (403 ExpiredProviderToken): check this host's clock (iat is its time)` };
      }
    }
  }

  #origin(topic: ApnsTopicConfig): Http2Origin {
    const origin = new URL(topic.endpoint).origin;
    const key = JSON.stringify([origin, topic.caFile ?? null]);
    let o = this.#origins.get(key);
    if (!o) {
      o = new Http2Origin(origin, topic.caFile === undefined ? undefined : readFileSync(topic.caFile, "utf8"));
      this.#origins.set(key, o);
    }
    return o;
  }
}

/**
 * The JSON APNs delivers to the app, or the dead outcome when it cannot be one: a template field
 * "aps" (APNs's own key), a "badge" that is not a whole number, data that is not JSON, or a
 * payload over APNs's limit (sending it would only be refused).
 */
export function apnsPayload(msg: PushMessage, pushType: PushType): { body: string } | { dead: Outcome } {
  const { title, body, sound, badge, aps: taken, ...rest } = msg.rendered;
  if (taken !== undefined) return { dead: { outcome: "dead", reason: "render", error: `topic ${msg.topic}: the template renders a field "aps", which is APNs's own key: rename the field` } };
  const aps: Record<string, unknown> = {};
  if (title !== undefined || body !== undefined) aps.alert = { ...(title === undefined ? {} : { title }), ...(body === undefined ? {} : { body }) };
  if (sound !== undefined && sound !== "") aps.sound = sound;
  if (badge !== undefined && badge.trim() !== "") {
    if (!/^\d{1,9}$/.test(badge.trim())) {
      return { dead: { outcome: "dead", reason: "render", error: `topic ${msg.topic}: the template's "badge" must render a whole number (0 clears the badge), got ${JSON.stringify(badge.slice(0, 40))}` } };
    }
    aps.badge = Number(badge.trim());
  }
  if (pushType === "background") aps["content-available"] = 1;
  let text: string;
  try {
    text = JSON.stringify({ aps, ...pushPayload({ ...msg, rendered: rest }) });
  } catch (err) {
    return { dead: { outcome: "dead", reason: "invalid", error: `message ${msg.id} cannot be encoded as JSON: ${errorText(err)}` } };
  }
  const limit = pushType === "voip" ? MAX_VOIP_PAYLOAD_BYTES : MAX_PAYLOAD_BYTES;
  const bytes = Buffer.byteLength(text);
  if (bytes > limit) {
    return {
      dead: {
        outcome: "dead",
        reason: "rejected",
        error: `topic ${msg.topic}: message ${msg.id}'s APNs payload is ${bytes} bytes, over the ${limit} APNs takes for a ${pushType} push; shorten the template's fields or the message's data`,
      },
    };
  }
  return { body: text };
}

/** `apns-id`: a UUID (version 8, RFC 9562) of the SHA-256 of the message id, so every retry carries the same one. */
export function apnsId(messageId: string): string {
  const h = createHash("sha256").update(messageId, "utf8").digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** `apns-topic` for a push type: the bundle ID with the suffix Apple asks for, unless it is written already. */
export function apnsTopic(bundleId: string, pushType: PushType): string {
  const suffix = TOPIC_SUFFIX[pushType];
  return suffix === undefined || bundleId.endsWith(suffix) ? bundleId : `${bundleId}${suffix}`;
}

const shortToken = (token: string) => `${token.slice(0, 8)}…`;

/** What to fix for each reason APNs gives for a refusal (its documented reasons). */
const FIX: Record<string, string> = {
  BadTopic: "check bundleId: it must be the app's bundle ID",
  MissingTopic: "check bundleId",
  TopicDisallowed: "the team may not push to this topic: check bundleId and teamId",
  InvalidProviderToken: "check teamId, keyId and keyFile: the team's ID, and the ID and .p8 file of one APNs key (Apple Developer › Keys)",
  MissingProviderToken: "check teamId, keyId and keyFile",
  Forbidden: "APNs forbids this push: check the key is enabled for APNs and belongs to teamId",
  BadCertificate: "check the APNs key",
  BadCertificateEnvironment: "check endpoint: production (api.push.apple.com) or sandbox (api.sandbox.push.apple.com)",
  BadExpirationDate: "check ttlSec",
  BadPriority: "check priority: 10, 5 or 1 (a background push must be 5)",
  InvalidPushType: "check pushType",
  BadMessageId: "the apns-id header was refused",
  PayloadEmpty: "the template and data make an empty payload",
  PayloadTooLarge: "shorten the template's fields or the message's data",
  BadPath: "check endpoint: it must be an APNs origin",
  MethodNotAllowed: "check endpoint: it must be an APNs origin",
  BadCollapseId: "the apns-collapse-id header was refused",
};

/**
 * What APNs's answer means: an outcome, `gone` for a dead device token, or
 * `expired-provider-token` (make a new token and send again). `where` names the origin, `device`
 * the device token (cut short).
 */
export function apnsOutcome(answer: Http2Answer, where: string, device: string, nowMs: number): AddressOutcome | "expired-provider-token" {
  const { status } = answer;
  const reason = reasonOf(answer.body);
  const said = `${status}${reason === "" ? "" : ` ${reason}`}`;
  if (status === 200) {
    const unique = answer.header("apns-unique-id");
    return { outcome: "delivered", detail: `${where} took the push to ${device} (apns-id ${answer.header("apns-id") ?? "?"}${unique ? `, apns-unique-id ${unique}` : ""})` };
  }
  if (status === 410) return { outcome: "gone", reason: `APNs answered ${said}` };
  if (status === 400 && (reason === "BadDeviceToken" || reason === "DeviceTokenNotForTopic")) {
    // A development build's token sent to the production endpoint (or the reverse) is BadDeviceToken too.
    return { outcome: "gone", reason: `APNs answered ${said}${reason === "BadDeviceToken" ? "; a sandbox token sent to production, or the reverse, is refused so too" : ""}` };
  }
  if (status === 403 && reason === "ExpiredProviderToken") return "expired-provider-token";
  if (status === 429 || status >= 500 || (status === 400 && reason === "IdleTimeout")) {
    const after = retryAfterMs(answer.header("retry-after") ?? null, nowMs);
    const o = { outcome: "retry" as const, reason: `${where} answered ${said} to the push to ${device}` };
    return after === undefined ? o : { ...o, retryAfterMs: after };
  }
  const fix = FIX[reason];
  const refused = `${where} refused the push to ${device} (${said})`;
  return { outcome: "dead", reason: "rejected", error: fix ? `${refused}: ${fix}; then replay the dead letter` : `${refused}; fix what APNs names, then replay the dead letter` };
}

/** APNs's `{"reason": "…"}`, or "" (a reason is one word; anything else is not quoted). */
function reasonOf(body: string): string {
  try {
    const r = (JSON.parse(body) as { reason?: unknown }).reason;
    return typeof r === "string" && /^[A-Za-z]{1,64}$/.test(r) ? r : "";
  } catch {
    return "";
  }
}
