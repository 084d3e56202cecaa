/**
 * The sub-queue actor (seed US9065778): takes messages from the durable queue, cuts each topic's
 * stream into sub-queues by the rules in force, and dispatches them — sub-queues in the secondary
 * scheme's order, messages inside one in the primary scheme's order — to the processors. It also
 * runs each topic's exception-queue retries.
 *
 * Topics are isolated: each has its own consumer on the queue and on the exception queue, its own
 * budget of held messages (`pipeline.maxHeld`) and its own budget of pushes in flight
 * (`topics.<name>.concurrency`, default `pipeline.maxInFlight`). A paused topic fills its held
 * budget and then is simply not fetched; a slow endpoint holds its own in-flight slots and no
 * others; a backlog is read by its own consumer. None of them stands in front of another topic's
 * messages.
 *
 * Every sub-queue actor in the cluster shares each topic's durable consumer, so the work is spread
 * over all of them; the order the rules define holds among the messages one actor holds. Held
 * messages are un-acked: they are kept alive with `working()`, and if the holder dies JetStream
 * hands them to another actor after AckWait. A message that keeps failing before it can be settled
 * is retired as poison (runtime/pipeline/poison.ts).
 */
import { jetstream, type Consumer, type JsMsg } from "@nats-io/jetstream";
import { Actor, type ActorContext, type ActorFactory } from "../../runtime/actor/index.js";
import { systemClock, type Clock } from "../../runtime/clock.js";
import { errorText } from "../../runtime/errors.js";
import { bindBucket } from "../../runtime/nats/buckets.js";
import { QueueIO } from "../../runtime/pipeline/queue-io.js";
import { originalOf, parseQueued, readExceptionEntry, unreadableLetter, type ParseContext } from "../../runtime/pipeline/stored.js";
import { Deferrer } from "./deferrer.js";
import { Dispatcher, type Settled } from "./dispatcher.js";
import { TopicLane, type Held } from "./lane.js";
import { SubQueueMetrics } from "./metrics.js";
import { RulesView } from "./rules-view.js";
import { SuspectLedger } from "./suspects.js";
import { Breakers } from "./breaker.js";
import { TokenGate } from "./tokens.js";
import { Rpc } from "../../runtime/nats/rpc.js";
import { parseRateLimit } from "../../runtime/rules/store.js";
import { HEADER_DRILL } from "../../runtime/names.js";

/** Fetch requests wait this long for messages before asking again, ms. */
const FETCH_EXPIRES_MS = 2000;
/** Most messages asked for in one fetch. */
const FETCH_BATCH = 256;
const BACKOFF_ON_ERROR_MS = 500;
/** How long a draining actor waits for pushes in flight, ms. */
const DRAIN_IN_FLIGHT_MS = 5000;

type Stream = "queue" | "exceptions";

export class SubQueueActor extends Actor {
  private readonly clock: Clock = systemClock;
  private io!: QueueIO;
  private dispatcher!: Dispatcher;
  private view!: RulesView;
  private ledger!: SuspectLedger;
  private parseCtx!: ParseContext;
  private metrics!: SubQueueMetrics;
  private breakers!: Breakers;
  private tokenRpc!: Rpc;
  private readonly gates = new Map<string, TokenGate>();
  private deferrer!: Deferrer;
  private readonly lanes = new Map<string, TopicLane>();
  private readonly inFlight = new Set<Held>();
  private running = true;
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private pumpScheduled = false;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private loops: Promise<void>[] = [];
  private dead = 0;

  override async start(): Promise<void> {
    const { nc, config, log, init } = this.ctx;
    const js = jetstream(nc);
    const topics = config.topics;
    this.io = new QueueIO(js, {
      prefix: config.subjectPrefix,
      maxPayload: nc.info?.max_payload ?? 1_048_576,
      isTopic: (t) => Object.hasOwn(topics, t),
    });
    this.parseCtx = { prefix: config.subjectPrefix, topics, limits: config.limits, now: this.clock.wall };
    this.metrics = new SubQueueMetrics(this.ctx.meter, topics, this.clock.wall);
    this.dispatcher = new Dispatcher(nc, this.io, config, this.clock, log, () => this.running, this.metrics);
    this.deferrer = new Deferrer(nc, config, `${init.node}-${init.id}`, log, (m, error) => {
      void this.dispatcher.deadInput({ m }, unreadableLetter(m, this.parseCtx, error, "too-large"));
    });
    this.deferrer.start();
    this.ledger = new SuspectLedger(
      await bindBucket(nc, this.io.names.poisonBucket),
      `${init.node}/${init.id}`,
      config.pipeline.maxDeliveries,
      this.clock.wall,
      log.child("poison"),
    );
    this.view = new RulesView(config.rules, log, () => this.onRulesChanged());
    await this.view.start(nc, this.io.names.rulesBucket);
    this.breakers = new Breakers(nc, config, `${init.node}/${init.id}`, this.clock, log.child("breaker"), () => this.onRulesChanged());
    await this.breakers.start();
    this.tokenRpc = new Rpc(nc, this.io.names.nodeInbox);
    for (const topic of Object.keys(topics)) {
      const lane = new TopicLane(topic, this.view, this.clock, topics[topic]!.concurrency ?? config.pipeline.maxInFlight);
      this.lanes.set(topic, lane);
      const configured = topics[topic]!.rateLimit ? parseRateLimit(topics[topic]!.rateLimit) : null;
      this.gates.set(topic, new TokenGate(this.io.names.rate(topic), this.tokenRpc, () => this.view.rateLimit(topic, configured), () => this.schedulePump(), this.clock, log));
      this.loops.push(
        this.fetchLoop(lane, "queue", () => js.consumers.get(this.io.names.queueStream, this.io.names.queueConsumer(topic))),
        this.fetchLoop(lane, "exceptions", () => js.consumers.get(this.io.names.exceptionStream, this.io.names.exceptionConsumer(topic))),
      );
    }
    // Held and in-flight messages must not reach AckWait while we still have them.
    this.keepAlive = setInterval(() => this.touchAll(), Math.max(500, config.pipeline.ackWaitMs / 3));
  }

  override async drain(): Promise<void> {
    this.running = false;
    clearTimeout(this.pumpTimer);
    // Held, undispatched messages go back at once for another actor; in-flight ones finish.
    for (const lane of this.lanes.values()) {
      for (const h of lane.takeAll()) h.m.nak();
    }
    const deadline = this.clock.monotonic() + DRAIN_IN_FLIGHT_MS;
    while (this.inFlight.size > 0 && this.clock.monotonic() < deadline) await sleep(20);
    clearInterval(this.keepAlive);
    this.deferrer.stop();
    this.view.stop();
    this.breakers.stop();
    for (const g of this.gates.values()) g.close();
    this.tokenRpc.close();
    this.dispatcher.close();
    await Promise.race([Promise.all(this.loops), sleep(FETCH_EXPIRES_MS + 500)]);
  }

  protected override gauges(): Record<string, number> {
    let held = 0;
    let retrying = 0;
    for (const lane of this.lanes.values()) {
      held += lane.held;
      retrying += lane.retriesWaiting;
    }
    for (const h of this.inFlight) if (h.entry) retrying++;
    return { held, inFlight: this.inFlight.size, retrying, dead: this.dead, pauses: this.view?.pauseCount ?? 0 };
  }

  /** Fetches one topic's messages from one stream while its lane has room; until the actor stops. */
  private async fetchLoop(lane: TopicLane, stream: Stream, bind: () => Promise<Consumer>): Promise<void> {
    const { config, log } = this.ctx;
    let consumer: Consumer | undefined;
    while (this.running) {
      const room = config.pipeline.maxHeld - lane.held;
      if (room <= 0) {
        // A paused or slow topic stops here, and only this topic's loop waits.
        await lane.waitForRoom();
        continue;
      }
      try {
        consumer ??= await bind();
        const batch = await consumer.fetch({ max_messages: Math.min(room, FETCH_BATCH), expires: FETCH_EXPIRES_MS });
        for await (const m of batch) {
          if (!this.running) {
            m.nak();
            continue;
          }
          const taking = this.take(lane, stream, m);
          if (taking) await taking;
        }
      } catch (err) {
        if (this.running) log.debug("fetch failed; retrying", { topic: lane.topic, stream, error: errorText(err) });
        await sleep(BACKOFF_ON_ERROR_MS);
      }
    }
  }

  /**
   * Takes one delivery into the lane. Nothing here may throw past it: a message that cannot be
   * read becomes a dead letter, and one that keeps killing its reader is retired as poison.
   */
  private take(lane: TopicLane, stream: Stream, m: JsMsg): Promise<void> | undefined {
    const planned = stream === "queue" ? 0 : 1;
    if (!this.ctx.config.faultInjection && this.ledger.expected(m, planned)) {
      // The common case, in the same turn: nothing to ask the poison bucket, no drill to run.
      this.read(lane, stream, m);
      return undefined;
    }
    return this.takeSuspect(lane, stream, m, planned);
  }

  /** {@link take} for a redelivery (the poison ledger decides) or under fault injection. */
  private async takeSuspect(lane: TopicLane, stream: Stream, m: JsMsg, planned: number): Promise<void> {
    const prefix = this.ctx.config.subjectPrefix;
    let admission;
    try {
      admission = await this.ledger.admit(m, planned);
    } catch (err) {
      admission = { read: true as const, done: async () => {} };
      this.ctx.log.debug("poison ledger failed; reading unmarked", { error: errorText(err) });
    }
    if (!admission.read) {
      this.failed++;
      this.dead++;
      const { raw: _raw, ...letter } = unreadableLetter(m, this.parseCtx, admission.error, "poison");
      // The whole original is kept (inline or as the letter's body), so the letter can be replayed.
      void this.dispatcher.deadInput({ m }, { ...letter, id: `poison:${m.info.streamSequence}` }, originalOf(m, prefix));
      return;
    }
    try {
      if (this.ctx.config.faultInjection) await this.drill(m);
      this.read(lane, stream, m);
    } finally {
      await admission.done();
    }
  }

  /** Reads an admitted delivery into the lane; never throws. */
  private read(lane: TopicLane, stream: Stream, m: JsMsg): void {
    try {
      if (stream === "queue") this.receive(lane, m);
      else this.receiveRetry(lane, m);
    } catch (err) {
      // One message must never abort the batch (the rest would wait out AckWait behind it).
      this.failed++;
      this.dead++;
      this.ctx.log.error("could not receive a stored message; dead-lettering it", { seq: m.seq, error: errorText(err) });
      void this.dispatcher.deadInput({ m }, unreadableLetter(m, this.parseCtx, `could not be received: ${errorText(err)}`));
    }
  }

  private receive(lane: TopicLane, m: JsMsg): void {
    const parsed = parseQueued(m, this.parseCtx);
    if (!parsed.ok) {
      this.failed++;
      this.dead++;
      void this.dispatcher.deadInput({ m }, parsed.dead);
      return;
    }
    // A raw publish scheduled for later moves to the scheduled stream (deferrer.ts).
    if (this.deferrer.take(m, parsed.envelope)) return;
    if (m.info.deliveryCount === 1) this.metrics.received(parsed.envelope);
    lane.add({ m, env: parsed.envelope });
    this.schedulePump();
  }

  /**
   * An exception entry: on its first delivery it goes back to the stream for its retry delay
   * (`nak(delay)`: the JetStream server keeps the time, so no host's clock is compared with
   * another's); the next delivery is the retry. (An entry whose first delivery was lost with its
   * actor comes back after AckWait and is retried then, early by at most its delay.)
   */
  private receiveRetry(lane: TopicLane, m: JsMsg): void {
    const read = readExceptionEntry(m, this.parseCtx);
    if (!read.ok) {
      this.failed++;
      this.dead++;
      void this.dispatcher.deadInput({ m }, read.dead);
      return;
    }
    if (m.info.deliveryCount === 1 && read.entry.delayMs > 0) {
      m.nak(read.entry.delayMs);
      return;
    }
    lane.addRetry({ m, env: read.entry.envelope, entry: read.entry });
    this.schedulePump();
  }

  /** Fault drills (faultInjection only): a message that kills or hangs the actor reading it. */
  private async drill(m: JsMsg): Promise<void> {
    const drill = m.headers?.get(HEADER_DRILL);
    if (drill === "crash") {
      // Thrown from a timer, outside every try, so it ends the thread as a bug would; until then
      // this reading never finishes.
      setTimeout(() => {
        throw new Error(`fault drill: message ${m.info.streamSequence} crashes its reader`);
      }, 0);
      await new Promise<never>(() => {});
    }
    if (drill === "hang") for (;;) {
      // Spins until the supervisor's ping times out and it terminates this thread.
    }
  }

  private onRulesChanged(): void {
    // A resume or a new rule may let lanes dispatch (and so make room) at once.
    this.pump();
    for (const lane of this.lanes.values()) lane.notifyRoom();
  }

  /**
   * Pumps once the messages at hand have all been received: what arrived in one read from the
   * socket travels as one batch (setImmediate runs after the I/O callbacks of this turn).
   */
  private schedulePump(): void {
    if (this.pumpScheduled || !this.running) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Dispatches what the rules and budgets allow now, and sets a timer for the next sub-queue to close. */
  private pump(): void {
    if (!this.running) return;
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    const lanes = [...this.lanes.values()].filter((l) => !l.paused);
    // Round-robin over topics, a batch each per round, each within its own in-flight budget.
    for (let progressed = true; progressed; ) {
      progressed = false;
      for (const lane of lanes) {
        // An endpoint whose breaker is not closed holds its messages (one probe when it is due).
        const gate = this.breakers.gate(lane.topic);
        if (gate === "none") continue;
        let room = Math.min(lane.concurrency - lane.inFlight, lane.batchSize, gate === "probe" ? 1 : Infinity);
        // A rate-limited topic dispatches only what the master's tokens allow.
        const tokens = this.gates.get(lane.topic)!;
        if (room > 0) room = tokens.allow(Math.min(room, lane.held));
        const batch: Held[] = [];
        for (let h = room > 0 ? lane.next() : undefined; h; h = batch.length < room ? lane.next() : undefined) batch.push(h);
        if (batch.length === 0) continue;
        tokens.take(batch.length);
        if (gate === "probe") this.breakers.probeSent(lane.topic);
        progressed = true;
        void this.send(lane, batch, gate === "probe");
      }
    }
    let nextDeadline: number | undefined;
    for (const lane of lanes) {
      const d = lane.scheduler.nextDeadlineMs();
      if (d !== undefined && (nextDeadline === undefined || d < nextDeadline)) nextDeadline = d;
    }
    if (nextDeadline !== undefined) {
      this.pumpTimer = setTimeout(() => this.pump(), Math.max(1, nextDeadline - this.clock.monotonic() + 1));
    }
  }

  private async send(lane: TopicLane, batch: Held[], probe = false): Promise<void> {
    for (const h of batch) this.inFlight.add(h);
    lane.inFlight += batch.length;
    let settled: Settled[] = [];
    try {
      settled = await this.dispatcher.dispatch(batch);
      for (const s of settled) this.count(s);
    } catch (err) {
      this.ctx.log.error("dispatch failed unexpectedly; the messages go back to the stream", { batch: batch.length, error: errorText(err) });
      for (const h of batch) h.m.nak();
    } finally {
      if (this.breakers.active) this.breakers.observe(lane.topic, settled, probe);
      for (const h of batch) this.inFlight.delete(h);
      lane.inFlight -= batch.length;
      this.schedulePump();
    }
  }

  private count(s: Settled): void {
    if (s === "delivered") this.processed++;
    else if (s === "dead") {
      this.failed++;
      this.dead++;
    }
  }

  private touchAll(): void {
    for (const h of this.inFlight) h.m.working();
    for (const lane of this.lanes.values()) lane.forEach((h) => h.m.working());
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const createActor: ActorFactory = (ctx: ActorContext) => new SubQueueActor(ctx);
