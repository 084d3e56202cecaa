/**
 * The processor actor (the seed's message-processing threads): renders batches of envelopes into
 * the push format with their topic's template and answers with one result each — a push message,
 * or the permanent render failure. It calls no one: the sub-queue actor's dispatcher takes the
 * rendered messages on to a pusher (runtime/pipeline/work.ts). Processors share
 * `herald.work.process` as a queue group, so every node's processors share the work.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import type { Rendered, RenderReply, RenderRequest } from "../../runtime/pipeline/work.js";
import { Renderer } from "./render.js";
import { names } from "../../runtime/names.js";

class ProcessorActor extends Actor {
  private renderer!: Renderer;
  private sub: Subscription | undefined;

  override async start(): Promise<void> {
    const { nc, config, log } = this.ctx;
    this.renderer = new Renderer(config.topics);
    for (const e of this.renderer.templateErrors()) {
      const where = e.channel === undefined ? { topic: e.topic } : { topic: e.topic, channel: e.channel.name };
      log.error("template does not parse; its messages will become dead letters", { ...where, field: e.field, error: e.error });
    }
    this.sub = nc.subscribe(names(config.subjectPrefix).process, {
      queue: "herald-processors",
      callback: (err, msg) => {
        if (!err) this.onBatch(msg);
      },
    });
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
  }

  private onBatch(msg: Msg): void {
    let reply: RenderReply;
    try {
      const { envelopes } = decode<RenderRequest>(msg.data);
      reply = { rendered: envelopes.map((env) => this.render(env)) };
    } catch (err) {
      // Not a batch the dispatcher wrote: answer so the caller is not left waiting.
      this.failed++;
      msg.respond(encode({ error: `unreadable render request: ${errorText(err)}` }));
      return;
    }
    msg.respond(encode(reply));
  }

  private render(env: RenderRequest["envelopes"][number]): Rendered {
    const r = this.renderer.render(env);
    if (r.ok) {
      this.processed++;
      return r.failed === undefined ? { ok: true, message: r.message } : { ok: true, message: r.message, failed: r.failed };
    }
    this.failed++;
    return { ok: false, reason: r.reason, error: r.error };
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new ProcessorActor(ctx);
