/**
 * The releaser, a master duty: it runs only while this node holds the master lease. It indexes
 * every scheduled message — read from the stream when it starts, then followed with an ordered
 * consumer — and when one is due on the server's clock (server-clock.ts) it puts it on the queue
 * and then deletes it from the scheduled stream. Nothing lives only in memory: a new master reads
 * the stream and carries on, releasing at once whatever fell due meanwhile.
 *
 * Releasing one message, in this order, so that nothing is lost and a repeat is harmless:
 * 1. {@link CHECK_AHEAD_MS} before its time, read the record back from the stream's leader: gone
 *    means it was cancelled. A cancel is refused from {@link CANCEL_CUTOFF_MS} before the due time
 *    on (admin.ts), so none can come after this check;
 * 2. at its time, publish it to `herald.in.<topic>` with `Nats-Msg-Id` `<topic>:<id>`: a release
 *    repeated within the queue's duplicate window (a master that died between 2 and 4) is dropped;
 * 3. write its release mark; 4. delete the record.
 * Checking ahead keeps the due moment for the publish alone (a burst of messages due at once goes
 * out in one go), and steps 3 and 4 run behind the releases for the same reason. A check or a
 * publish that fails is tried again shortly; a delete that fails, too, without publishing again.
 */
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { names, type Names } from "../names.js";
import { QueueIO } from "../pipeline/queue-io.js";
import { unreadableLetter } from "../pipeline/stored.js";
import { CANCEL_CUTOFF_MS, CHECK_AHEAD_MS } from "./admin.js";
import { DueIndex } from "./due-index.js";
import { ServerClock } from "./server-clock.js";
import { jsMsgStoredAt, readScheduled, releasedEnvelope, ScheduledWriter, type ScheduledMessage } from "./store.js";

/** Checks (step 1) in flight at most. */
const MAX_CHECKS = 256;
/** Publishes (step 2) in flight at most. */
const MAX_PUBLISHES = 512;
/** Marks and deletes (steps 3–4) in flight at most. */
const MAX_FINISHING = 64;
/** A timer is never set further ahead than this, so a new clock estimate is soon taken into account, ms. */
const MAX_TIMER_MS = 10_000;
/** A check or publish that failed is tried again after this long, ms. */
const RETRY_MS = 250;
/** Records released but not yet deleted are deleted again this often, ms. */
const DELETE_RETRY_MS = 1000;
const FOLLOW_BACKOFF_MS = 500;
/** How long a stopping releaser waits for the work in flight, ms. */
const STOP_WAIT_MS = 2000;

export interface ReleaserOptions {
  nc: NatsConnection;
  config: HeraldConfig;
  log: Logger;
  /** Names this node's clock probes. */
  prober: string;
  /** The server's clock as this node sees it. @defaultValue probes over `nc` */
  clock?: ServerClock;
}

export class Releaser {
  private readonly n: Names;
  /** Indexed, not yet checked. */
  private readonly unchecked = new DueIndex<ScheduledMessage>();
  /** Checked (not cancelled), waiting for their time. */
  private readonly ready = new DueIndex<ScheduledMessage>();
  /** Sequences taken out of `unchecked` and not yet deleted: never indexed again meanwhile. */
  private readonly taken = new Set<number>();
  /** Released, delete still owed. */
  private readonly undeleted = new Set<number>();
  private readonly toFinish: ScheduledMessage[] = [];
  private readonly work = new Set<Promise<void>>();
  private checking = 0;
  private publishing = 0;
  private finishing = 0;
  private readonly clock: ServerClock;
  private readonly io: QueueIO;
  private readonly writer: ScheduledWriter;
  private jsm: JetStreamManager | undefined;
  private running = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Server time the timer is set for. */
  private armedFor: number | undefined;
  private deleteTimer: ReturnType<typeof setInterval> | undefined;
  private messages: ConsumerMessages | undefined;
  private following: Promise<void> | undefined;
  private released = 0;

  constructor(private readonly opts: ReleaserOptions) {
    const { nc, config } = opts;
    this.n = names(config.subjectPrefix);
    this.clock = opts.clock ?? ServerClock.overNats(nc, config.subjectPrefix, opts.prober, { log: opts.log });
    const js = jetstream(nc);
    const maxPayload = nc.info?.max_payload ?? 1_048_576;
    this.io = new QueueIO(js, { prefix: config.subjectPrefix, maxPayload, isTopic: (t) => Object.hasOwn(config.topics, t) });
    this.writer = new ScheduledWriter(js, config.subjectPrefix, maxPayload);
  }

  /** Starts following the stream; resolves at once (the first read goes on in the background). */
  async start(): Promise<void> {
    this.running = true;
    this.clock.start();
    this.following = this.follow();
    void this.watchConnection();
    this.deleteTimer = setInterval(() => void this.deleteOwed(), DELETE_RETRY_MS);
  }

  /** Stops at once: nothing new starts after this; the work in flight is awaited briefly. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.deleteTimer);
    this.clock.stop();
    this.messages?.stop();
    const waited = new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref?.());
    await Promise.race([Promise.allSettled([...this.work, this.following]), waited]);
    this.unchecked.clear();
    this.ready.clear();
  }

  /** Messages indexed and not yet released. */
  get pending(): number {
    return this.unchecked.size + this.ready.size;
  }

  /** Messages released since start. */
  get releasedCount(): number {
    return this.released;
  }

  /** Reads the whole stream, then follows it, with a new ordered consumer after any failure or reconnect. */
  private async follow(): Promise<void> {
    const js = jetstream(this.opts.nc);
    while (this.running) {
      try {
        const consumer = await js.consumers.get(this.n.scheduledStream, {});
        const messages = await consumer.consume();
        this.messages = messages;
        if (!this.running) messages.stop();
        for await (const m of messages) {
          if (!this.running) break;
          this.onRecord(m);
        }
      } catch (err) {
        if (this.running) this.opts.log.debug("following the scheduled stream failed; trying again", { error: errorText(err) });
      }
      if (this.running) await new Promise((r) => setTimeout(r, FOLLOW_BACKOFF_MS));
    }
  }

  /** After a reconnect (say the server restarted) the stream is read again from the start. */
  private async watchConnection(): Promise<void> {
    for await (const s of this.opts.nc.status()) {
      if (!this.running) return;
      if (s.type !== "reconnect") continue;
      this.opts.log.info("reconnected: reading the scheduled stream again");
      void this.clock.sync();
      this.messages?.stop();
    }
  }

  private onRecord(m: JsMsg): void {
    const seq = m.seq;
    if (this.taken.has(seq) || this.unchecked.has(seq)) return;
    const read = readScheduled({ subject: m.subject, seq, data: m.data, storedAt: jsMsgStoredAt(m) }, this.n, this.opts.config.limits);
    if (!read.ok) {
      void this.track(this.discard(m, read.error));
      return;
    }
    this.unchecked.add(read.message);
    const wakeAt = read.message.dueAt - CHECK_AHEAD_MS;
    if (this.armedFor === undefined || wakeAt < this.armedFor) this.arm();
  }

  /**
   * Starts what is due now — checks of messages within {@link CHECK_AHEAD_MS} of their time,
   * publishes of checked messages whose time has come — and sets the timer for what comes next.
   * Called again whenever a check or publish finishes.
   */
  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = undefined;
    if (!this.running) return;
    const now = this.clock.now();
    if (now === undefined) {
      // No estimate of the server's clock yet (the first probes are on their way).
      if (this.unchecked.size + this.ready.size > 0) this.timer = setTimeout(() => this.arm(), 20);
      return;
    }
    for (const m of this.unchecked.takeDue(now + CHECK_AHEAD_MS, MAX_CHECKS - this.checking)) this.check(m);
    for (const m of this.ready.takeDue(now, MAX_PUBLISHES - this.publishing)) this.publish(m, now);
    // What is at capacity is started again when a check or publish finishes.
    const nextCheck = this.checking < MAX_CHECKS ? this.unchecked.nextDue() : undefined;
    const nextPublish = this.publishing < MAX_PUBLISHES ? this.ready.nextDue() : undefined;
    const next = Math.min(nextCheck === undefined ? Infinity : nextCheck - CHECK_AHEAD_MS, nextPublish ?? Infinity);
    if (next === Infinity) return;
    this.armedFor = next;
    this.timer = setTimeout(() => this.arm(), Math.max(0, Math.min(MAX_TIMER_MS, Math.ceil(next - now))));
  }

  /** Step 1: still in the stream (not cancelled)? Then it waits in `ready` for its time. */
  private check(m: ScheduledMessage): void {
    this.taken.add(m.seq);
    this.checking++;
    this.track(
      (async () => {
        try {
          // From the leader: a replica that is behind could still hold a cancelled record.
          const still = await (await this.manager()).streams.getMessage(this.n.scheduledStream, { seq: m.seq });
          if (still === null) {
            this.taken.delete(m.seq);
            this.opts.log.debug("a scheduled message was cancelled", { id: m.id, topic: m.topic });
          } else if (this.running) this.ready.add(m);
        } catch (err) {
          this.opts.log.warn("checking a scheduled message failed; trying again", { id: m.id, topic: m.topic, error: errorText(err) });
          this.later(() => {
            this.taken.delete(m.seq);
            this.unchecked.add(m);
          });
        } finally {
          this.checking--;
          this.arm();
        }
      })(),
    );
  }

  /** Step 2: on the queue; steps 3–4 follow behind. */
  private publish(m: ScheduledMessage, now: number): void {
    this.publishing++;
    this.track(
      (async () => {
        try {
          await this.io.enqueue(releasedEnvelope(m.envelope, m.dueAt));
          this.released++;
          const lateMs = Math.round(now - m.dueAt);
          if (lateMs > 1000) this.opts.log.info("released a scheduled message late", { id: m.id, topic: m.topic, lateMs });
          this.toFinish.push(m);
          this.finishMore();
        } catch (err) {
          this.opts.log.warn("releasing a scheduled message failed; trying again", { id: m.id, topic: m.topic, error: errorText(err) });
          this.later(() => this.ready.add(m));
        } finally {
          this.publishing--;
          this.arm();
        }
      })(),
    );
  }

  /** Steps 3–4 of released messages, a few at a time. */
  private finishMore(): void {
    while (this.finishing < MAX_FINISHING && this.toFinish.length > 0) {
      const m = this.toFinish.shift()!;
      this.finishing++;
      this.track(
        this.finish(m).finally(() => {
          this.finishing--;
          this.finishMore();
        }),
      );
    }
  }

  private async finish(m: ScheduledMessage): Promise<void> {
    await this.writer.markReleased(m, this.clock.now()).catch((err) => this.opts.log.debug("could not mark a release", { id: m.id, error: errorText(err) }));
    try {
      await this.remove(m.seq);
      this.taken.delete(m.seq);
    } catch {
      this.undeleted.add(m.seq);
    }
  }

  /** Deletes a released record; one already gone counts as deleted. */
  private async remove(seq: number): Promise<void> {
    const jsm = await this.manager();
    try {
      await jsm.streams.deleteMessage(this.n.scheduledStream, seq, false);
    } catch (err) {
      if ((await jsm.streams.getMessage(this.n.scheduledStream, { seq }).catch(() => undefined)) === null) return;
      throw err;
    }
  }

  private async deleteOwed(): Promise<void> {
    for (const seq of [...this.undeleted]) {
      try {
        await this.remove(seq);
        this.undeleted.delete(seq);
        this.taken.delete(seq);
      } catch {
        return; // NATS is away: next round
      }
    }
  }

  /** A record that is no scheduled message becomes a dead letter (`invalid`) and leaves the stream. */
  private async discard(m: JsMsg, error: string): Promise<void> {
    this.taken.add(m.seq);
    try {
      const letter = unreadableLetter(m, { prefix: this.opts.config.subjectPrefix, now: Date.now }, error);
      await this.io.deadLetter(letter, `sched:${m.seq}`);
      await this.remove(m.seq);
      this.opts.log.warn("a record of the scheduled stream is no scheduled message: dead-lettered", { seq: m.seq, error });
    } catch (err) {
      this.opts.log.warn("could not dead-letter a malformed scheduled record", { seq: m.seq, error: errorText(err) });
    } finally {
      this.taken.delete(m.seq);
    }
  }

  /** Runs `f` after {@link RETRY_MS} (if still running), then looks at what is due. */
  private later(f: () => void): void {
    setTimeout(() => {
      if (!this.running) return;
      f();
      this.arm();
    }, RETRY_MS);
  }

  private track(p: Promise<void>): void {
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await jetstreamManager(this.opts.nc, { checkAPI: false });
    return this.jsm;
  }
}
