/**
 * The sub-queue actor (seed US9065778): takes messages from the durable queue, cuts each topic's
 * stream into sub-queues by the rules in force, and dispatches them — sub-queues in the secondary
 * scheme's order, messages inside one in the primary scheme's order — to the processors.
 *
 * Every sub-queue actor in the cluster shares one durable consumer, so the work is spread over
 * all of them; the order the rules define holds among the messages one actor holds. Held messages
 * are un-acked: they are kept alive with `working()`, and if the holder dies JetStream hands them
 * to another actor after AckWait. The actor also runs the exception queue's retry loop.
 */
import { jetstream, type Consumer, type JsMsg } from "@nats-io/jetstream";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { decode } from "../../runtime/codec.js";
import { errorText } from "../../runtime/errors.js";
import { envelopeProblem } from "../../runtime/pipeline/envelope.js";
import { parseQueued, QueueIO, storedAtMs, unreadableLetter } from "../../runtime/pipeline/queue-io.js";
import type { ExceptionEntry } from "../../runtime/pipeline/streams.js";
import type { Envelope } from "../../runtime/pipeline/types.js";
import { Dispatcher, type Settled } from "./dispatcher.js";
import { Lane } from "./lanes.js";
import { RulesView } from "./rules-view.js";

interface Held {
  m: JsMsg;
  env: Envelope;
}

/** Fetch requests wait this long for messages before asking again, ms. */
const FETCH_EXPIRES_MS = 1000;
const BACKOFF_ON_ERROR_MS = 500;

export class SubQueueActor extends Actor {
  private io!: QueueIO;
  private dispatcher!: Dispatcher;
  private view!: RulesView;
  private readonly lanes = new Map<string, Lane<Held>>();
  private readonly inFlight = new Set<JsMsg>();
  private running = true;
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private wake: (() => void) | undefined;
  private loops: Promise<void>[] = [];
  private retrying = 0;
  private dead = 0;

  override async start(): Promise<void> {
    const { nc, config, log } = this.ctx;
    const js = jetstream(nc);
    this.io = new QueueIO(js, config.subjectPrefix);
    this.dispatcher = new Dispatcher(nc, this.io, config, log);
    this.view = new RulesView(config.rules, log, () => this.pump());
    await this.view.start(nc, this.io.names.rulesBucket);
    const queue = await js.consumers.get(this.io.names.queueStream, this.io.names.queueConsumer);
    const exceptions = await js.consumers.get(this.io.names.exceptionStream, this.io.names.exceptionConsumer);
    // Held and in-flight messages must not reach AckWait while we still have them.
    this.keepAlive = setInterval(() => this.touchAll(), Math.max(500, config.pipeline.ackWaitMs / 3));
    this.loops.push(this.fetchLoop(queue), this.retryLoop(exceptions));
  }

  override async drain(): Promise<void> {
    this.running = false;
    this.wake?.();
    clearTimeout(this.pumpTimer);
    // Held, undispatched messages go back at once for another actor; in-flight ones finish.
    for (const lane of this.lanes.values()) {
      for (let h = lane.scheduler.next(); h; h = lane.scheduler.next()) h.m.nak();
    }
    const deadline = Date.now() + 5000;
    while (this.inFlight.size > 0 && Date.now() < deadline) await sleep(20);
    clearInterval(this.keepAlive);
    this.view.stop();
    this.dispatcher.close();
    await Promise.race([Promise.all(this.loops), sleep(FETCH_EXPIRES_MS + 500)]);
  }

  protected override gauges(): Record<string, number> {
    return { held: this.inLanes(), inFlight: this.inFlight.size, retrying: this.retrying, dead: this.dead, pauses: this.view?.pauseCount ?? 0 };
  }

  /** Received and not yet dispatched. */
  private inLanes(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.scheduler.size;
    return n;
  }

  /** Everything this actor holds un-acked: in its lanes or in flight. */
  private held(): number {
    return this.inLanes() + this.inFlight.size;
  }

  private async fetchLoop(consumer: Consumer): Promise<void> {
    const { config } = this.ctx;
    while (this.running) {
      const room = config.pipeline.maxHeld + config.pipeline.maxInFlight - this.held();
      if (room <= 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        const batch = await consumer.fetch({ max_messages: Math.min(room, 256), expires: FETCH_EXPIRES_MS });
        for await (const m of batch) {
          if (!this.running) {
            m.nak();
            continue;
          }
          try {
            this.receive(m);
          } catch (err) {
            // One message must never abort the batch (the rest would wait out AckWait, again and
            // again behind it): it becomes a dead letter with the reason.
            this.failed++;
            this.dead++;
            this.ctx.log.error("could not receive a queued message; dead-lettering it", { seq: m.seq, error: errorText(err) });
            void this.dispatcher.deadInput(m, unreadableLetter(m, config.subjectPrefix, `could not be received: ${errorText(err)}`));
          }
        }
      } catch (err) {
        if (this.running) this.ctx.log.debug("queue fetch failed; retrying", { error: errorText(err) });
        await sleep(BACKOFF_ON_ERROR_MS);
      }
    }
  }

  private receive(m: JsMsg): void {
    const { config } = this.ctx;
    const parsed = parseQueued(m, { prefix: config.subjectPrefix, topics: config.topics, maxPayloadBytes: config.limits.maxPayloadBytes });
    if (!parsed.ok) {
      this.failed++;
      this.dead++;
      void this.dispatcher.deadInput(m, parsed.dead);
      return;
    }
    const env = parsed.envelope;
    if (!Object.hasOwn(config.topics, env.topic)) {
      // Queued by ingest, but the topic has since been removed from the config.
      this.failed++;
      this.dead++;
      void this.dispatcher.dead(m, env, "unknown-topic", `topic "${env.topic}" is not in the cluster config`).catch(() => m.nak(1000));
      return;
    }
    let lane = this.lanes.get(env.topic);
    if (!lane) {
      lane = new Lane<Held>(env.topic, this.view);
      this.lanes.set(env.topic, lane);
    }
    lane.add({ m, env }, storedAtMs(m));
    this.pump();
  }

  /** Dispatches what the rules allow now, and sets a timer for the next sub-queue to close. */
  private pump(): void {
    if (!this.running) return;
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    const max = this.ctx.config.pipeline.maxInFlight;
    let nextDeadline: number | undefined;
    let progressed = true;
    // Round-robin over topics so one busy topic cannot starve the others.
    while (progressed && this.inFlight.size < max) {
      progressed = false;
      for (const lane of this.lanes.values()) {
        if (this.inFlight.size >= max) break;
        if (this.view.paused(lane.topic)) continue;
        const h = lane.scheduler.next();
        if (!h) continue;
        progressed = true;
        void this.send(h);
      }
    }
    for (const lane of this.lanes.values()) {
      const d = lane.scheduler.nextDeadlineMs();
      if (d !== undefined && (nextDeadline === undefined || d < nextDeadline)) nextDeadline = d;
    }
    if (nextDeadline !== undefined) {
      this.pumpTimer = setTimeout(() => this.pump(), Math.max(1, nextDeadline - Date.now() + 1));
    }
  }

  private async send(h: Held): Promise<void> {
    this.inFlight.add(h.m);
    try {
      this.count(await this.dispatcher.dispatch(h.m, h.env));
    } finally {
      this.inFlight.delete(h.m);
      this.wake?.();
      this.wake = undefined;
      this.pump();
    }
  }

  /** The exception queue: each entry is retried when due, then delivered, re-queued or dead. */
  private async retryLoop(consumer: Consumer): Promise<void> {
    const max = this.ctx.config.pipeline.maxInFlight;
    let active = 0;
    while (this.running) {
      try {
        const batch = await consumer.fetch({ max_messages: Math.max(1, max - active), expires: FETCH_EXPIRES_MS });
        for await (const m of batch) {
          const entry = this.readEntry(m);
          if (!entry) continue;
          const wait = entry.nextAttemptAt - Date.now();
          if (!this.running || this.view.paused(entry.envelope.topic) || wait > 0) {
            // Not due (or paused): back to the stream until then; nak(delay) is our own backoff.
            m.nak(Math.max(wait, this.running ? 1000 : 0));
            continue;
          }
          active++;
          this.retrying++;
          void this.dispatcher
            .dispatch(m, entry.envelope)
            .then((s) => this.count(s))
            .finally(() => {
              active--;
              this.retrying--;
            });
        }
      } catch (err) {
        if (this.running) this.ctx.log.debug("exception fetch failed; retrying", { error: errorText(err) });
        await sleep(BACKOFF_ON_ERROR_MS);
      }
      while (this.running && active >= max) await sleep(10);
    }
  }

  /**
   * An exception entry, checked before anything relies on it: `herald.exc.*` is a subject any
   * client could publish on, and a malformed entry must become a dead letter, not wedge the loop.
   */
  private readEntry(m: JsMsg): ExceptionEntry | undefined {
    const prefix = this.ctx.config.subjectPrefix;
    const topic = m.subject.slice(`${prefix}.exc.`.length);
    let problem: string | undefined;
    let entry: ExceptionEntry | undefined;
    try {
      entry = decode<ExceptionEntry>(m.data);
      problem =
        typeof entry !== "object" || entry === null
          ? "not an object"
          : (envelopeProblem(entry.envelope, topic) ??
            (typeof entry.nextAttemptAt !== "number" || !Number.isInteger(entry.attempts) ? "missing attempts or nextAttemptAt" : undefined));
    } catch (err) {
      problem = `not msgpack: ${errorText(err)}`;
    }
    if (!problem) return entry;
    this.failed++;
    this.dead++;
    const letter = unreadableLetter(m, prefix, `malformed exception entry: ${problem}`);
    letter.topic = topic;
    letter.subject = m.subject;
    this.ctx.log.error("malformed exception entry; dead-lettering it", { seq: m.seq, error: problem });
    void this.dispatcher.deadInput(m, letter);
    return undefined;
  }

  private count(s: Settled): void {
    if (s === "delivered") this.processed++;
    else if (s === "dead") {
      this.failed++;
      this.dead++;
    }
  }

  private touchAll(): void {
    for (const m of this.inFlight) m.working();
    for (const lane of this.lanes.values()) lane.scheduler.forEach((h) => h.m.working());
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const createActor: ActorFactory = (ctx: ActorContext) => new SubQueueActor(ctx);
