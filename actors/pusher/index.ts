/**
 * The pusher actor (the seed's push interface): delivers batches of rendered messages of one topic
 * on its channel (`nats`, `webhook`, …) and answers with one outcome each, once every push of the
 * batch has one; a message of a fan-out topic is pushed on each of its channels at once, with one
 * outcome per channel. Pushers share `herald.work.push` as a queue group, so every node's pushers share
 * the work; only nodes may publish there, so a pusher pushes (and signs) only what its own
 * cluster's dispatchers sent.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import type { ChannelConfig, SingleTopicConfig } from "../../runtime/config/index.js";
import { isFanout } from "../../runtime/config/topics.js";
import type { Counter, Histogram } from "../../runtime/metrics/meter.js";
import type { ChannelOutcome, FanoutOutcome, Outcome, PushMessage } from "../../runtime/pipeline/types.js";
import type { PushReply, PushRequest } from "../../runtime/pipeline/work.js";
import type { KV } from "@nats-io/kv";
import { bindBucket } from "../../runtime/nats/buckets.js";
import { getRecipient, removeAddresses } from "../../runtime/pipeline/recipients.js";
import { createChannels, type Channels, type RecipientRegistry } from "./channels/index.js";

class PusherActor extends Actor {
  private channels!: Channels;
  /** Per topic and channel (a fan-out topic's channels by name): its push series. */
  private readonly meters = new Map<string, Map<string, PushMeters>>();
  /** Each fan-out topic's channels by name. */
  private readonly fanout = new Map<string, Map<string, ChannelConfig>>();
  private sub: Subscription | undefined;

  override async start(): Promise<void> {
    const { nc, names } = this.ctx;
    // The recipients registry, bound on first use (a topic that never names a recipient never reads it).
    let bucket: Promise<KV> | undefined;
    const kv = () => (bucket ??= bindBucket(nc, names.recipientsBucket).catch((err) => ((bucket = undefined), Promise.reject(err))));
    const recipients: RecipientRegistry = {
      get: async (id) => getRecipient(await kv(), id),
      removeAddresses: async (id, kind, keys) => removeAddresses(await kv(), id, kind, keys),
    };
    this.channels = createChannels(nc, names, { recipients });
    for (const [name, topic] of Object.entries(this.ctx.config.topics)) {
      if (!isFanout(topic)) {
        this.meterOf(name, topic.channel);
        continue;
      }
      this.fanout.set(name, new Map(topic.channels.map((c) => [c.name, c])));
      for (const c of topic.channels) this.meterOf(name, c.name);
    }
    this.sub = nc.subscribe(names.push, {
      queue: "herald-pushers",
      callback: (err, msg) => {
        if (!err) void this.onBatch(msg);
      },
    });
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
    await this.channels?.close();
  }

  private async onBatch(msg: Msg): Promise<void> {
    let req: PushRequest;
    try {
      req = decode<PushRequest>(msg.data);
    } catch (err) {
      msg.respond(encode({ error: `unreadable push request: ${errorText(err)}` }));
      return;
    }
    const topic = this.ctx.config.topics[req.topic];
    const fanout = this.fanout.get(req.topic);
    let outcomes: PushReply["outcomes"];
    if (topic === undefined) {
      outcomes = req.messages.map(() => ({ outcome: "dead", reason: "unknown-topic", error: `topic "${req.topic}" is not in the cluster config` }));
    } else if (fanout !== undefined) {
      outcomes = await Promise.all(req.messages.map((m) => this.pushChannels(req.topic, fanout, m)));
    } else {
      const single = topic as SingleTopicConfig;
      outcomes = await Promise.all(req.messages.map((m) => this.timedPush(req.topic, single, single.channel, m)));
    }
    for (const o of outcomes) {
      if ("channels" in o) for (const c of o.channels) this.count(c.outcome);
      else this.count(o);
    }
    const reply: PushReply = { outcomes };
    msg.respond(encode(reply));
  }

  private count(o: Outcome): void {
    if (o.outcome === "delivered") this.processed++;
    else this.failed++;
  }

  /**
   * A fan-out message: each channel it carries, at once, each with its own rendered fields and
   * settings; one outcome per channel.
   */
  private async pushChannels(name: string, channels: Map<string, ChannelConfig>, m: PushMessage): Promise<FanoutOutcome | Outcome> {
    const { channels: pushes, ...message } = m;
    if (pushes === undefined) {
      // Rendered by a processor whose config gives the topic one channel: retried (and in the end
      // a dead letter), never acked as if there had been nothing to push.
      return { outcome: "retry", reason: `topic "${name}" fans out in this pusher's config, but the message was rendered for one channel: do the nodes run the same config?` };
    }
    const outcomes = await Promise.all(
      pushes.map(async ({ channel, rendered }): Promise<ChannelOutcome> => {
        const settings = channels.get(channel);
        if (settings === undefined) {
          const error = `topic "${name}" has no channel named "${channel}" in this node's config`;
          return { channel, outcome: { outcome: "dead", reason: "invalid", error } };
        }
        return { channel, outcome: await this.timedPush(name, settings, channel, { ...message, rendered }) };
      }),
    );
    return { channels: outcomes };
  }

  /** One push, timed and counted by outcome under its topic and channel. */
  private async timedPush(name: string, topic: SingleTopicConfig, channel: string, m: PushMessage): Promise<Outcome> {
    const start = performance.now();
    const o = await this.channels.channelFor(topic).push(m, topic);
    const h = this.meterOf(name, channel);
    h.duration.observe((performance.now() - start) / 1000);
    h[o.outcome === "delivered" && o.nowhere ? "nowhere" : o.outcome].add();
    if (o.outcome === "delivered" && o.removed) h.removed.add(o.removed);
    return o;
  }

  /**
   * The push series of a topic's channel (a single-channel topic's kind, a fan-out topic's channel
   * name), made on first use (every configured one's at start).
   */
  private meterOf(topic: string, channel: string): PushMeters {
    let byChannel = this.meters.get(topic);
    if (!byChannel) this.meters.set(topic, (byChannel = new Map()));
    let h = byChannel.get(channel);
    if (!h) {
      const labels = { topic, channel };
      const { meter } = this.ctx;
      h = {
        duration: meter.histogram("herald_push_duration_seconds", labels),
        delivered: meter.counter("herald_pushes_total", { ...labels, outcome: "delivered" }),
        retry: meter.counter("herald_pushes_total", { ...labels, outcome: "retry" }),
        dead: meter.counter("herald_pushes_total", { ...labels, outcome: "dead" }),
        nowhere: meter.counter("herald_pushes_total", { ...labels, outcome: "nowhere" }),
        removed: meter.counter("herald_addresses_removed_total", labels),
      };
      byChannel.set(channel, h);
    }
    return h;
  }
}

interface PushMeters {
  duration: Histogram;
  delivered: Counter;
  retry: Counter;
  dead: Counter;
  nowhere: Counter;
  removed: Counter;
}

export const createActor: ActorFactory = (ctx: ActorContext) => new PusherActor(ctx);
