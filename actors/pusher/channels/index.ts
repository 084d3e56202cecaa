/**
 * The push channels: what the pusher actor imports. One channel instance per kind serves every
 * topic of that kind; the topic config travels with each push.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { SingleTopicConfig } from "../../../runtime/config/schema.js";
import { ApnsChannel } from "./apns.js";
import type { Channel } from "./channel.js";
import type { RecipientRegistry } from "./devices.js";
import { EmailChannel } from "./email.js";
import { FcmChannel } from "./fcm.js";
import { NatsChannel, type NatsChannelOptions } from "./nats.js";
import { SseChannel } from "./sse.js";
import { WebhookChannel, type WebhookChannelOptions } from "./webhook.js";
import { WebPushChannel } from "./webpush.js";
import { type Names } from "../../../runtime/names.js";

export { ApnsChannel, apnsId, apnsOutcome, apnsPayload, apnsTopic } from "./apns.js";
export { ApnsKeyError, TOKEN_REFRESH_MS } from "./apns-token.js";
export { pushPayload } from "./channel.js";
export { EmailChannel, smtpOutcome } from "./email.js";
export { FcmChannel, fcmOutcome } from "./fcm.js";
export { AccessTokenError, FCM_SCOPE, ServiceAccountError } from "./fcm-token.js";
export { NatsChannel } from "./nats.js";
export { SseChannel } from "./sse.js";
export { signWebhook, verifyWebhook, webhookKey } from "./signature.js";
export { retryAfterMs, WebhookChannel } from "./webhook.js";
export { MAX_WEBPUSH_PAYLOAD_BYTES, WebPushChannel } from "./webpush.js";
export type { Channel } from "./channel.js";
export { pushToAddresses } from "./devices.js";
export type { AddressedSend, AddressOutcome, RecipientRegistry } from "./devices.js";
export type { ApnsChannelOptions } from "./apns.js";
export type { FcmChannelOptions, FcmContext } from "./fcm.js";
export type { NatsChannelOptions } from "./nats.js";
export type { VerifyOptions } from "./signature.js";
export type { WebhookChannelOptions } from "./webhook.js";
export type { WebPushChannelOptions } from "./webpush.js";

/** A `topics.<name>.channel` value. */
export type ChannelKind = SingleTopicConfig["channel"];

/** Every channel of a pusher, by kind. */
export interface Channels {
  readonly byKind: ReadonlyMap<ChannelKind, Channel>;
  /** The channel that delivers `topic`'s messages. */
  channelFor(topic: SingleTopicConfig): Channel;
  /** Closes every channel (waits for pushes in flight); the NATS connection stays open. */
  close(): Promise<void>;
}

/**
 * One channel per kind. `nc` is shared with the caller and not closed by the channels;
 * `names.out(topic)` is the default subject of `nats` topics.
 */
export function createChannels(
  nc: NatsConnection,
  names: Pick<Names, "out" | "sse" | "sseStream">,
  opts: { nats?: NatsChannelOptions; webhook?: WebhookChannelOptions; recipients?: RecipientRegistry } = {},
): Channels {
  const byKind = new Map<ChannelKind, Channel>([
    ["nats", new NatsChannel(nc, names.out, opts.nats)],
    ["webhook", new WebhookChannel(opts.webhook)],
    ["email", new EmailChannel(opts.recipients)],
    ["sse", new SseChannel(nc, names, opts.nats?.flushTimeoutMs)],
    ["webpush", new WebPushChannel(opts.recipients)],
    ["apns", new ApnsChannel(opts.recipients)],
    ["fcm", new FcmChannel(opts.recipients)],
  ]);
  return {
    byKind,
    channelFor: (topic) => byKind.get(topic.channel)!,
    close: async () => {
      await Promise.all([...byKind.values()].map((c) => c.close()));
    },
  };
}
