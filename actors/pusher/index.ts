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
import type { Outcome } from "../../runtime/pipeline/types.js";
import type { PushReply, PushRequest } from "../../runtime/pipeline/work.js";
import { createChannels, type Channels } from "./channels/index.js";

class PusherActor extends Actor {
  private channels!: Channels;
  private sub: Subscription | undefined;

  override async start(): Promise<void> {
    const { nc, names } = this.ctx;
    this.channels = createChannels(nc, names);
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
      ? await Promise.all(req.messages.map((m) => this.channels.channelFor(topic).push(m, topic)))
      : req.messages.map(() => ({ outcome: "dead", reason: "unknown-topic", error: `topic "${req.topic}" is not in the cluster config` }));
    for (const o of outcomes) {
      if (o.outcome === "delivered") this.processed++;
      else this.failed++;
    }
    const reply: PushReply = { outcomes };
    msg.respond(encode(reply));
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new PusherActor(ctx);
