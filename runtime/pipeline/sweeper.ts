/**
 * The unknown-topic sweeper, a master duty. Each configured topic has its own consumers, so a
 * message published on `herald.in.<anything else>` (a typo, a removed topic, junk) is captured by
 * the queue stream but read by no consumer. Every interval the master lists the subjects the queue
 * and exception streams hold, and moves the messages of unconfigured ones into dead letters
 * (reason `unknown-topic`, one subject `herald.dlq._unknown` for all of them, so junk cannot grow
 * the server's subject index without bound), deleting each once its letter is durable.
 *
 * An envelope queued for a topic that has since been removed keeps its envelope in the letter, so
 * `herald dlq replay` brings it back once the topic is configured again.
 *
 * Second duty, every few sweeps: a consumer that does not see messages its stream holds. A consumer runs on
 * its leader's server and reads that server's copy of the stream; on 2.9.10 a copy can stay behind
 * after leader changes (seen in the three-host test: the exception stream's leader held two entries
 * past the consumer's delivered sequence, the consumer counted nothing pending, for two minutes).
 * When the stream leader holds a message of the topic past what the consumer delivered, the
 * consumer counts none pending, and the same message is found so on two checks in a row, the
 * consumer's leader is asked to step down, so that a server whose copy is whole takes over.
 */
import { jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "../clock.js";
import { decodeUntrusted } from "../codec/index.js";
import type { HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { decodeBudgets, envelopeProblem } from "./envelope.js";
import { QueueIO, type Original } from "./queue-io.js";
import { type DeadLetter } from "./streams.js";
import type { Envelope } from "./types.js";
import { HEADER_ENVELOPE, names } from "../names.js";

/** How often the master looks for messages of unknown topics, ms. */
export const SWEEP_INTERVAL_MS = 1000;
/** Messages moved per sweep at most, so one sweep stays short. */
const SWEEP_BATCH = 1000;
/** Consumers that do not see their stream's messages are looked for on every this many sweeps. */
const UNSEEN_EVERY = 5;
/** Dead letters keep at most this much of a raw message. */
const MAX_RAW_KEPT = 64 * 1024;

/** A consumer whose leader {@link UnknownTopicSweeper.unstick} asked to step down, for the log. */
export interface SteppedDown {
  stream: string;
  consumer: string;
  /** Sequence of the message it had not seen on two checks. */
  firstUnseen: number;
  /** The leader that was asked to step down. */
  leader: string | undefined;
}

export class UnknownTopicSweeper {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private sweeping: Promise<void> | undefined;
  private sweeps = 0;
  /** Per stream/consumer, the first message it did not see at the last check (see {@link unstick}). */
  private readonly unseen = new Map<string, number>();
  private readonly names;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: HeraldConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.names = names(config.subjectPrefix);
  }

  start(): void {
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.sweeping;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.sweeping = this.sweepOnce()
        .then((moved) => {
          if (moved > 0) this.log.warn("messages of unconfigured topics moved to dead letters", { moved });
        })
        .then(() => (this.sweeps++ % UNSEEN_EVERY === 0 ? this.unstick() : []))
        .then((moved) => {
          for (const m of moved) this.log.warn("a consumer did not see messages its stream holds; its leader was asked to step down", { ...m });
        })
        .catch((err) => this.log.debug("unknown-topic sweep failed; trying again", { error: errorText(err) }))
        .finally(() => this.schedule(SWEEP_INTERVAL_MS));
    }, ms);
  }

  /** One pass over both streams; resolves with the number of messages moved. */
  async sweepOnce(): Promise<number> {
    const jsm = await jetstreamManager(this.nc);
    const io = new QueueIO(jetstream(this.nc), {
      prefix: this.config.subjectPrefix,
      maxPayload: this.nc.info?.max_payload ?? 1_048_576,
      isTopic: (t) => this.isTopic(t),
    });
    let moved = 0;
    for (const [stream, filter, kind] of [
      [this.names.queueStream, this.names.queueSubjects, "queue"],
      [this.names.exceptionStream, this.names.exceptionSubjects, "exceptions"],
    ] as const) {
      const info = await jsm.streams.info(stream, { subjects_filter: filter });
      const prefixLength = filter.length - 1; // "herald.in." — the filter without its ">"
      for (const subject of Object.keys(info.state.subjects ?? {})) {
        if (this.isTopic(subject.slice(prefixLength))) continue;
        moved += await this.sweepSubject(jsm, io, stream, subject, subject.slice(prefixLength), kind, SWEEP_BATCH - moved);
        if (moved >= SWEEP_BATCH || !this.running) return moved;
      }
    }
    return moved;
  }

  /**
   * Asks the leader of every topic consumer that has not seen its stream's messages for two checks
   * in a row to step down; resolves with what it did.
   */
  async unstick(): Promise<SteppedDown[]> {
    const jsm = await jetstreamManager(this.nc);
    const done: SteppedDown[] = [];
    for (const [stream, subjectOf, consumerOf] of [
      [this.names.queueStream, this.names.in, this.names.queueConsumer],
      [this.names.exceptionStream, this.names.exc, this.names.exceptionConsumer],
    ] as const) {
      for (const topic of Object.keys(this.config.topics)) {
        const consumer = consumerOf(topic);
        const key = `${stream}/${consumer}`;
        const c = await jsm.consumers.info(stream, consumer).catch(() => undefined);
        const next =
          c === undefined || c.num_pending > 0
            ? null
            : await jsm.streams.getMessage(stream, { next_by_subj: subjectOf(topic), seq: c.delivered.stream_seq + 1 } as never).catch(() => null);
        const verdict = unseenVerdict(this.unseen.get(key), next?.seq);
        if (verdict.remember === undefined) this.unseen.delete(key);
        else this.unseen.set(key, verdict.remember);
        if (!verdict.stepDown || c === undefined) continue;
        await stepDownConsumer(this.nc, stream, consumer);
        done.push({ stream, consumer, firstUnseen: next!.seq, leader: c.cluster?.leader });
      }
    }
    return done;
  }

  private isTopic(topic: string): boolean {
    return Object.hasOwn(this.config.topics, topic);
  }

  private async sweepSubject(
    jsm: JetStreamManager,
    io: QueueIO,
    stream: string,
    subject: string,
    topic: string,
    kind: "queue" | "exceptions",
    budget: number,
  ): Promise<number> {
    let moved = 0;
    while (moved < budget && this.running) {
      const m = await jsm.streams.getMessage(stream, { next_by_subj: subject, seq: 0 } as never).catch(() => null);
      if (m === null) break;
      const envelope = this.envelopeOf(m, topic, kind);
      const letter: DeadLetter = {
        // Input that never became a message is named by its stream sequence, as everywhere.
        id: envelope?.id ?? `invalid:${m.seq}`,
        topic,
        reason: "unknown-topic",
        error: `no topic ${JSON.stringify(topic.length > 64 ? `${topic.slice(0, 64)}…` : topic)} in the cluster config (its messages on ${subject} were read by no consumer)`,
        attempts: envelope?.attempts ?? 0,
        deadAt: this.clock.wall(),
        ...(envelope === undefined ? { raw: m.data.length > MAX_RAW_KEPT ? m.data.slice(0, MAX_RAW_KEPT) : m.data, subject } : { envelope }),
      };
      const original: Original = { subject: this.names.in(topic), data: m.data, envelopeHeader: m.header?.get(HEADER_ENVELOPE) === "1" };
      await io.deadLetter(letter, `unknown:${stream}:${m.seq}`, kind === "queue" ? original : undefined);
      await jsm.streams.deleteMessage(stream, m.seq);
      moved++;
    }
    return moved;
  }

  /** The envelope a stored message carries, when it is a valid one (Herald's own, or an exception entry's). */
  private envelopeOf(m: StoredMsg, topic: string, kind: "queue" | "exceptions"): Envelope | undefined {
    if (kind === "queue" && m.header?.get(HEADER_ENVELOPE) !== "1") return undefined;
    const decoded = decodeUntrusted(m.data, decodeBudgets(this.config.limits));
    if (!decoded.ok) return undefined;
    const value = kind === "queue" ? decoded.value : (decoded.value as { envelope?: unknown } | null)?.envelope;
    return envelopeProblem(value, topic, this.config.limits) === undefined ? (value as Envelope) : undefined;
  }
}

/**
 * The decision of {@link UnknownTopicSweeper.unstick} for one consumer: `unseen` is the sequence
 * of the first message of its subject past its delivered sequence that the stream leader holds
 * while the consumer counts none pending (undefined: there is none), `before` what the previous
 * check found. The same message unseen twice in a row is a consumer behind its stream; a new one
 * may only be a message published between the two reads, so it is remembered and looked at again.
 */
export function unseenVerdict(before: number | undefined, unseen: number | undefined): { stepDown: boolean; remember: number | undefined } {
  if (unseen === undefined) return { stepDown: false, remember: undefined };
  if (before === unseen) return { stepDown: true, remember: undefined };
  return { stepDown: false, remember: unseen };
}

/** Asks a replicated consumer's leader to hand over to another replica (JetStream API). */
export async function stepDownConsumer(nc: NatsConnection, stream: string, consumer: string): Promise<void> {
  const reply = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`, undefined, { timeout: 2000 });
  const answer = reply.json<{ error?: { description?: string } }>();
  if (answer.error) throw new Error(`consumer ${consumer} of ${stream} could not step down: ${answer.error.description ?? "no reason given"}`);
}
