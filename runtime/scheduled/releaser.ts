/**
 * The releaser, a master duty: it runs only while this node holds the master lease. It indexes
 * every scheduled message — read from the stream when it starts, then followed with an ordered
 * consumer — and when one is due on the server's clock (server-clock.ts) it puts it on the queue
 * and then deletes it from the scheduled stream. Nothing lives only in memory: a new master reads
 * the stream and carries on, releasing at once whatever fell due meanwhile.
 *
 * Releasing one message, in this order, so that nothing is lost and a repeat is harmless:
 * 1. read the record back from the stream's leader: gone means it was cancelled (a cancel is
 *    refused within a second of the due time, so it cannot race this step);
 * 2. publish it to `herald.in.<topic>` with `Nats-Msg-Id` `<topic>:<id>`: a release repeated within
 *    the queue's duplicate window (a master that died between 2 and 4) is dropped there;
 * 3. write its release mark; 4. delete the record.
 * A publish that fails is tried again shortly; a delete that fails, too, without publishing again.
 */
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { names, type Names } from "../names.js";
import { QueueIO } from "../pipeline/queue-io.js";
import { unreadableLetter } from "../pipeline/stored.js";
import { DueIndex } from "./due-index.js";
import { ServerClock } from "./server-clock.js";
import { jsMsgStoredAt, readScheduled, releasedEnvelope, ScheduledWriter, type ScheduledMessage } from "./store.js";

/** Releases in flight at most; more wait their turn. */
const MAX_PARALLEL = 128;
/** A timer is never set further ahead than this, so a new clock estimate is soon taken into account, ms. */
const MAX_TIMER_MS = 10_000;
/** A release whose publish failed is tried again after this long, ms. */
const RETRY_MS = 250;
/** Records released but not yet deleted are deleted again this often, ms. */
const DELETE_RETRY_MS = 1000;
const FOLLOW_BACKOFF_MS = 500;
/** How long a stopping releaser waits for releases in flight, ms. */
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
  private readonly index = new DueIndex<ScheduledMessage>();
  /** Sequences being released (or waiting to be tried again): never indexed twice. */
  private readonly releasing = new Set<number>();
  /** Released, delete still owed. */
  private readonly undeleted = new Set<number>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly clock: ServerClock;
  private readonly io: QueueIO;
  private readonly writer: ScheduledWriter;
  private jsm: JetStreamManager | undefined;
  private running = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
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

  /** Stops at once: no release starts after this; those in flight are awaited briefly. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.deleteTimer);
    this.clock.stop();
    this.messages?.stop();
    const waited = new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref?.());
    await Promise.race([Promise.allSettled([...this.inFlight, this.following]), waited]);
    this.index.clear();
  }

  /** Messages indexed and not yet released. */
  get pending(): number {
    return this.index.size;
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
    if (this.releasing.has(seq) || this.index.has(seq)) return;
    const read = readScheduled({ subject: m.subject, seq, data: m.data, storedAt: jsMsgStoredAt(m) }, this.n, this.opts.config.limits);
    if (!read.ok) {
      void this.discard(m, read.error);
      return;
    }
    this.index.add(read.message);
    if (this.armedFor === undefined || read.message.dueAt < this.armedFor) this.arm();
  }

  /** Sets the timer for the earliest due message, or releases what is due now. */
  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = undefined;
    if (!this.running) return;
    const next = this.index.nextDue();
    if (next === undefined) return;
    const now = this.clock.now();
    if (now === undefined) {
      // No estimate of the server's clock yet (the first probes are on their way).
      this.timer = setTimeout(() => this.arm(), 20);
      return;
    }
    if (next <= now) {
      this.releaseDue(now);
      return;
    }
    this.armedFor = next;
    this.timer = setTimeout(() => this.arm(), Math.min(MAX_TIMER_MS, Math.ceil(next - now)));
  }

  private releaseDue(now: number): void {
    const room = MAX_PARALLEL - this.inFlight.size;
    if (room <= 0) return; // a release finishing arms again
    for (const m of this.index.takeDue(now, room)) {
      this.releasing.add(m.seq);
      const p = this.release(m, now).finally(() => {
        this.inFlight.delete(p);
        if (this.running && this.inFlight.size === MAX_PARALLEL - 1) this.arm();
      });
      this.inFlight.add(p);
    }
    this.arm();
  }

  private async release(m: ScheduledMessage, now: number): Promise<void> {
    let published = false;
    try {
      const jsm = await this.manager();
      // From the leader: a replica that is behind could still hold a cancelled record.
      const still = await jsm.streams.getMessage(this.n.scheduledStream, { seq: m.seq });
      if (still === null) {
        this.releasing.delete(m.seq);
        this.opts.log.debug("a scheduled message was cancelled", { id: m.id, topic: m.topic });
        return;
      }
      if (!this.running) {
        this.releasing.delete(m.seq);
        return;
      }
      await this.io.enqueue(releasedEnvelope(m.envelope, m.dueAt));
      published = true;
      this.released++;
      const lateMs = Math.round(now - m.dueAt);
      if (lateMs > 1000) this.opts.log.info("released a scheduled message late", { id: m.id, topic: m.topic, lateMs });
      await this.writer.markReleased(m, this.clock.now()).catch((err) => this.opts.log.debug("could not mark a release", { id: m.id, error: errorText(err) }));
      await this.remove(m.seq);
      this.releasing.delete(m.seq);
    } catch (err) {
      if (published) {
        this.undeleted.add(m.seq);
        return;
      }
      this.opts.log.warn("releasing a scheduled message failed; trying again", { id: m.id, topic: m.topic, error: errorText(err) });
      setTimeout(() => {
        this.releasing.delete(m.seq);
        if (!this.running) return;
        this.index.add(m);
        this.arm();
      }, RETRY_MS);
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
        this.releasing.delete(seq);
      } catch {
        return; // NATS is away: next round
      }
    }
  }

  /** A record that is no scheduled message becomes a dead letter (`invalid`) and leaves the stream. */
  private async discard(m: JsMsg, error: string): Promise<void> {
    this.releasing.add(m.seq);
    try {
      const letter = unreadableLetter(m, { prefix: this.opts.config.subjectPrefix, now: Date.now }, error);
      await this.io.deadLetter(letter, `sched:${m.seq}`);
      await this.remove(m.seq);
      this.opts.log.warn("a record of the scheduled stream is no scheduled message: dead-lettered", { seq: m.seq, error });
    } catch (err) {
      this.opts.log.warn("could not dead-letter a malformed scheduled record", { seq: m.seq, error: errorText(err) });
    } finally {
      this.releasing.delete(m.seq);
    }
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await jetstreamManager(this.opts.nc, { checkAPI: false });
    return this.jsm;
  }
}
