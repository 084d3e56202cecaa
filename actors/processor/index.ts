/**
 * The processor actor (the seed's message-processing threads): renders a message's topic
 * template into the push format and has a pusher deliver it, answering the sub-queue actor with
 * the outcome. Render failures are permanent: the message goes straight to dead letters.
 * Processors share `herald.work.process` as a queue group, so every node's processors share work.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import { NoRespondersError, Rpc } from "../../runtime/nats/rpc.js";
import { pushTimeoutMs } from "../../runtime/pipeline/deadlines.js";
import { pipelineNames } from "../../runtime/pipeline/streams.js";
import type { Envelope, Outcome } from "../../runtime/pipeline/types.js";
import { Renderer } from "./render.js";

/** What a processor sends a pusher. */
export interface PushRequest {
  topic: string;
  message: import("../../runtime/pipeline/types.js").PushMessage;
}

class ProcessorActor extends Actor {
  private renderer!: Renderer;
  private sub: Subscription | undefined;
  private rpc!: Rpc;
  private readonly subjects = pipelineNames(this.ctx.config.subjectPrefix);

  override async start(): Promise<void> {
    const { nc, config, log } = this.ctx;
    this.rpc = new Rpc(nc, this.ctx.names.nodeInbox);
    this.renderer = new Renderer(config.topics);
    for (const e of this.renderer.templateErrors()) {
      log.error("template does not parse; its messages will become dead letters", { topic: e.topic, field: e.field, error: e.error });
    }
    this.sub = nc.subscribe(this.subjects.process, {
      queue: "herald-processors",
      callback: (err, msg) => {
        if (!err) void this.onMessage(msg);
      },
    });
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
    this.rpc?.close();
  }

  private async onMessage(msg: Msg): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await this.process(decode<Envelope>(msg.data));
    } catch (err) {
      outcome = { outcome: "dead", reason: "invalid", error: `unreadable message: ${errorText(err)}` };
    }
    if (outcome.outcome === "delivered") this.processed++;
    else this.failed++;
    msg.respond(encode(outcome));
  }

  private async process(env: Envelope): Promise<Outcome> {
    const { config } = this.ctx;
    const rendered = this.renderer.render(env);
    if (!rendered.ok) return { outcome: "dead", reason: rendered.reason, error: rendered.error };
    const req: PushRequest = { topic: env.topic, message: rendered.message };
    try {
      const reply = await this.rpc.request(this.subjects.push, encode(req), pushTimeoutMs(config, env.topic));
      return decode<Outcome>(reply.data);
    } catch (err) {
      const reason = err instanceof NoRespondersError ? "no pusher actor is running" : `no answer from a pusher: ${errorText(err)}`;
      return { outcome: "retry", reason };
    }
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new ProcessorActor(ctx);
