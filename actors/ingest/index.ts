/**
 * The ingest actor: the seed's SOA interface (`herald.submit`, request/reply) and input interface
 * (HTTP `POST /v1/messages` on the node's port, served by the node's first ingest actor).
 * Both validate, queue durably, and answer only once JetStream has acknowledged the message.
 * Raw publishes on `herald.in.<topic>` need no actor: the queue stream captures them directly.
 */
import { jetstream } from "@nats-io/jetstream";
import type { Msg, Subscription } from "@nats-io/transport-node";
import { monotonicFactory } from "ulid";
import { encode, isJsonPayload } from "../../runtime/codec/index.js";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { errorText, TooLargeError } from "../../runtime/errors.js";
import { decodeSubmission, validateSubmission } from "../../runtime/pipeline/envelope.js";
import { QueueIO } from "../../runtime/pipeline/queue-io.js";
import type { Source } from "../../runtime/pipeline/types.js";
import { HttpIngest } from "./http.js";

/** The answer to a submission, over NATS and HTTP alike. */
export type SubmitReply =
  | { ok: true; id: string; duplicate: boolean }
  | { ok: false; error: string; reason: "invalid" | "unknown-topic" | "too-large" | "unavailable" };

const newId = monotonicFactory();

export class IngestActor extends Actor {
  private io!: QueueIO;
  private sub: Subscription | undefined;
  private http: HttpIngest | undefined;

  override async start(): Promise<void> {
    const { nc, config, init, names } = this.ctx;
    this.io = new QueueIO(jetstream(nc), {
      prefix: config.subjectPrefix,
      maxPayload: nc.info?.max_payload ?? 1_048_576,
      isTopic: (t) => Object.hasOwn(config.topics, t),
    });
    this.sub = nc.subscribe(names.submit, {
      queue: "herald-ingest",
      callback: (err, msg) => {
        if (!err) void this.onSubmit(msg);
      },
    });
    const port = config.nodes.find((n) => n.name === init.node)?.http?.port;
    if (port !== undefined && init.index === 0) {
      this.http = new HttpIngest({
        host: config.http.host,
        port,
        token: config.http.token,
        maxBodyBytes: config.http.maxBodyBytes,
        limits: config.limits,
        node: init.node,
        submit: (input) => this.submit(input, "http"),
        log: this.ctx.log,
      });
      await this.http.listen();
      this.ctx.log.info("HTTP ingest listening", { url: `http://${config.http.host}:${port}/v1/messages` });
    }
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
    await this.http?.close();
  }

  /** Validates and queues one submission; never throws. */
  async submit(input: unknown, source: Source): Promise<SubmitReply> {
    const { config } = this.ctx;
    const result = validateSubmission(input, {
      source,
      topics: config.topics,
      limits: config.limits,
      now: Date.now,
      newId: () => newId(),
    });
    if (!result.ok) {
      this.failed++;
      return { ok: false, error: result.error, reason: result.reason };
    }
    try {
      const ack = await this.io.enqueue(result.envelope);
      this.processed++;
      return { ok: true, id: result.envelope.id, duplicate: ack.duplicate };
    } catch (err) {
      this.failed++;
      // Too large for the server is the message's fault, and permanent: not "try again later".
      if (err instanceof TooLargeError) return { ok: false, error: err.message, reason: "too-large" };
      return { ok: false, error: `the queue did not accept the message: ${errorText(err)}`, reason: "unavailable" };
    }
  }

  private async onSubmit(msg: Msg): Promise<void> {
    const json = isJsonPayload(msg.data);
    const decoded = decodeSubmission(msg.data, this.ctx.config.limits);
    const reply: SubmitReply = decoded.ok
      ? await this.submit(decoded.value, "submit")
      : { ok: false, error: decoded.error, reason: "invalid" };
    if (!decoded.ok) this.failed++;
    // Answer in the caller's encoding: JSON clients get JSON back.
    msg.respond(json ? new TextEncoder().encode(JSON.stringify(reply)) : encode(reply));
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new IngestActor(ctx);
