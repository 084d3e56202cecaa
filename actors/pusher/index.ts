/**
 * The pusher actor (the seed's push interface): delivers batches of rendered messages of one topic
 * on its channel (`nats`, `webhook`) and answers with one outcome each, once every push of the
 * batch has one. Pushers share `herald.work.push` as a queue group, so every node's pushers share
 * the work; only nodes may publish there, so a pusher pushes (and signs) only what its own
 * cluster's dispatchers sent.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import type { TopicConfig } from "../../runtime/config/index.js";
import type { Counter, Histogram } from "../../runtime/metrics/meter.js";
import type { Outcome, PushMessage } from "../../runtime/pipeline/types.js";
import type { PushReply, PushRequest } from "../../runtime/pipeline/work.js";
import type { KV } from "@nats-io/kv";
import { bindBucket } from "../../runtime/nats/buckets.js";
import { getRecipient, removeAddresses } from "../../runtime/pipeline/recipients.js";
import { createChannels, type Channels, type RecipientRegistry } from "./channels/index.js";

class PusherActor extends Actor {
  private channels!: Channels;
  /** Per topic (one channel each): its push series. */
  private readonly meters = new Map<string, { duration: Histogram; delivered: Counter; retry: Counter; dead: Counter; nowhere: Counter; removed: Counter }>();
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
    for (const [name, topic] of Object.entries(this.ctx.config.topics)) this.meterOf(name, topic);
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
    const outcomes: Outcome[] = topic
      ? await Promise.all(req.messages.map((m) => this.timedPush(req.topic, topic, m)))
      : req.messages.map(() => ({ outcome: "dead", reason: "unknown-topic", error: `topic "${req.topic}" is not in the cluster config` }));
    for (const o of outcomes) {
      if (o.outcome === "delivered") this.processed++;
      else this.failed++;
    }
    const reply: PushReply = { outcomes };
    msg.respond(encode(reply));
  }

  /** One push, timed and counted by outcome. */
  private async timedPush(name: string, topic: TopicConfig, m: PushMessage): Promise<Outcome> {
    const start = performance.now();
    const o = await this.channels.channelFor(topic).push(m, topic);
    const h = this.meterOf(name, topic);
    h.duration.observe((performance.now() - start) / 1000);
    h[o.outcome === "delivered" && o.nowhere ? "nowhere" : o.outcome].add();
    if (o.outcome === "delivered" && o.removed) h.removed.add(o.removed);
    return o;
  }

  /** A topic's push series, made on first use (every configured topic's at start). */
  private meterOf(name: string, topic: TopicConfig) {
    let h = this.meters.get(name);
    if (!h) {
      const labels = { topic: name, channel: topic.channel };
      const { meter } = this.ctx;
      h = {
        duration: meter.histogram("herald_push_duration_seconds", labels),
        delivered: meter.counter("herald_pushes_total", { ...labels, outcome: "delivered" }),
        retry: meter.counter("herald_pushes_total", { ...labels, outcome: "retry" }),
        dead: meter.counter("herald_pushes_total", { ...labels, outcome: "dead" }),
        nowhere: meter.counter("herald_pushes_total", { ...labels, outcome: "nowhere" }),
        removed: meter.counter("herald_addresses_removed_total", labels),
      };
      this.meters.set(name, h);
    }
    return h;
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new PusherActor(ctx);
