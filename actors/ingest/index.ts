/**
 * The ingest actor: the seed's SOA interface (`herald.submit`, request/reply) and input interface
 * (HTTP `POST /v1/messages`: the node's HTTP server hands the body to an ingest actor of its node).
 * Both validate, queue durably, and answer only once JetStream has acknowledged the message.
 * Raw publishes on `herald.in.<topic>` need no actor: the queue stream captures them directly.
 * A scheduled message (`deliverAt`, `delayMs`) not yet due on the server's clock goes to the
 * scheduled stream instead of the queue (runtime/scheduled/).
 */
import { jetstream } from "@nats-io/jetstream";
import type { Msg, Subscription } from "@nats-io/transport-node";
import { monotonicFactory } from "ulid";
import { encode, isJsonPayload } from "../../runtime/codec/index.js";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { errorText, TooLargeError } from "../../runtime/errors.js";
import { decodeSubmission, validateSubmission } from "../../runtime/pipeline/envelope.js";
import { QueueIO } from "../../runtime/pipeline/queue-io.js";
import { isScheduled } from "../../runtime/pipeline/schedule.js";
import type { Envelope, Source } from "../../runtime/pipeline/types.js";
import { ScheduledWriter, ServerClock } from "../../runtime/scheduled/index.js";
import type { SubmitReply } from "../../runtime/pipeline/work.js";


const newId = monotonicFactory();

export class IngestActor extends Actor {
  private io!: QueueIO;
  private scheduled!: ScheduledWriter;
  private clock!: ServerClock;
  private sub: Subscription | undefined;

  override async start(): Promise<void> {
    const { nc, config, names } = this.ctx;
    this.io = new QueueIO(jetstream(nc), {
      prefix: config.subjectPrefix,
      maxPayload: nc.info?.max_payload ?? 1_048_576,
      isTopic: (t) => Object.hasOwn(config.topics, t),
    });
    this.scheduled = new ScheduledWriter(jetstream(nc), config.subjectPrefix, nc.info?.max_payload ?? 1_048_576);
    this.clock = ServerClock.overNats(nc, config.subjectPrefix, `${this.ctx.init.node}-${this.ctx.init.id}`, { log: this.ctx.log });
    this.clock.start();
    this.sub = nc.subscribe(names.submit, {
      queue: "herald-ingest",
      callback: (err, msg) => {
        if (!err) void this.onSubmit(msg);
      },
    });
  }

  override async drain(): Promise<void> {
    await this.sub?.drain();
    this.clock?.stop();
  }

  /**
   * A `POST /v1/messages` body the node's HTTP server received (runtime/node/http-server.ts):
   * decoded as strictly as every other path and queued with source `http`. Never rejects.
   */
  override async request(body: unknown): Promise<SubmitReply> {
    if (!(body instanceof Uint8Array)) return { ok: false, error: "the HTTP body did not reach the ingest actor as bytes", reason: "invalid" };
    const decoded = decodeSubmission(body, this.ctx.config.limits);
    if (!decoded.ok) {
      this.failed++;
      this.ctx.meter.counter("herald_ingest_requests_total", { source: "http", result: "invalid" }).add();
      return { ok: false, error: decoded.error, reason: "invalid" };
    }
    return this.submit(decoded.value, "http");
  }

  /** Validates and queues one submission; never throws. */
  async submit(input: unknown, source: Source): Promise<SubmitReply> {
    const reply = await this.queue(input, source);
    this.ctx.meter.counter("herald_ingest_requests_total", { source, result: reply.ok ? (reply.duplicate ? "duplicate" : "accepted") : reply.reason }).add();
    return reply;
  }

  private async queue(input: unknown, source: Source): Promise<SubmitReply> {
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
      const env = result.envelope;
      const ack = isScheduled(env) && !this.dueNow(env) ? await this.scheduled.schedule(env) : await this.io.enqueue(env);
      this.processed++;
      return { ok: true, id: result.envelope.id, duplicate: ack.duplicate };
    } catch (err) {
      this.failed++;
      // Too large for the server is the message's fault, and permanent: not "try again later".
      if (err instanceof TooLargeError) return { ok: false, error: err.message, reason: "too-large" };
      return { ok: false, error: `the queue did not accept the message: ${errorText(err)}`, reason: "unavailable" };
    }
  }

  /**
   * Due already, on the server's clock: `delayMs: 0`, or a `deliverAt` that has passed. Before
   * the first clock estimate a `deliverAt` counts as not due (the releaser releases it at once if it is).
   */
  private dueNow(env: Envelope): boolean {
    if (env.delayMs !== undefined) return env.delayMs === 0;
    const now = this.clock.now();
    return now !== undefined && env.deliverAt !== undefined && env.deliverAt <= now;
  }

  private async onSubmit(msg: Msg): Promise<void> {
    const json = isJsonPayload(msg.data);
    const decoded = decodeSubmission(msg.data, this.ctx.config.limits);
    const reply: SubmitReply = decoded.ok
      ? await this.submit(decoded.value, "submit")
      : { ok: false, error: decoded.error, reason: "invalid" };
    if (!decoded.ok) {
      this.failed++;
      this.ctx.meter.counter("herald_ingest_requests_total", { source: "submit", result: "invalid" }).add();
    }
    // Answer in the caller's encoding: JSON clients get JSON back.
    msg.respond(json ? new TextEncoder().encode(JSON.stringify(reply)) : encode(reply));
  }
}

export const createActor: ActorFactory = (ctx: ActorContext) => new IngestActor(ctx);
