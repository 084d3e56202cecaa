/**
 * The pusher actor (the seed's push interface): delivers a rendered message on its topic's
 * channel (`nats`, `webhook`) and answers with the outcome. Pushers share `herald.work.push` as a
 * queue group, so every node's pushers share work.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import { pipelineNames } from "../../runtime/pipeline/streams.js";
import type { Outcome } from "../../runtime/pipeline/types.js";
import type { PushRequest } from "../processor/index.js";
import { createChannels, type Channels } from "./channels/index.js";

class PusherActor extends Actor {
  private channels!: Channels;
  private sub: Subscription | undefined;

  override async start(): Promise<void> {
    const { nc, config, names } = this.ctx;
    this.channels = createChannels(nc, names);
    this.sub = nc.subscribe(pipelineNames(config.subjectPrefix).push, {
      queue: "herald-pushers",
      callback: (err, msg) => {
        if (!err) void this.onMessage(msg);
      },
    });
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
    await this.channels?.close();
  }

  private async onMessage(msg: Msg): Promise<void> {
    let outcome: Outcome;
    try {
      const req = decode<PushRequest>(msg.data);
      const topic = this.ctx.config.topics[req.topic];
      outcome = topic
        ? await this.channels.channelFor(topic).push(req.message, topic)
        : { outcome: "dead", reason: "unknown-topic", error: `topic "${req.topic}" is not in the cluster config` };
    } catch (err) {
      outcome = { outcome: "retry", reason: `push failed: ${errorText(err)}` };
    }
    if (outcome.outcome === "delivered") this.processed++;
    else this.failed++;
    msg.respond(encode(outcome));
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new PusherActor(ctx);
