/**
 * Sends one held message to a processor (which renders it and has a pusher deliver it) and
 * settles the outcome on the message's stream record: delivered → ack; transient failure →
 * exception queue; permanent failure or retries exhausted → dead letters. The decision is
 * runtime/pipeline/settle.ts; this file carries it out.
 *
 * The successor record is made durable before the message is acked, so a crash between the two
 * duplicates, never loses. A successor write that fails (NATS unavailable) is retried here with
 * backoff while the message stays held and kept alive; the message is not handed back to the
 * stream, which would spend one of its deliveries (see poison.ts) on an outage.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "../../runtime/clock.js";
import { decode, encode } from "../../runtime/codec/index.js";
import type { HeraldConfig } from "../../runtime/config/index.js";
import { errorText, TooLargeError } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import { NoRespondersError, Rpc } from "../../runtime/nats/rpc.js";
import { processTimeoutMs } from "../../runtime/pipeline/deadlines.js";
import type { Original, QueueIO } from "../../runtime/pipeline/queue-io.js";
import { decideSettlement, type Settlement } from "../../runtime/pipeline/settle.js";
import { originalOf } from "../../runtime/pipeline/stored.js";
import type { DeadLetter } from "../../runtime/pipeline/streams.js";
import type { Envelope, Outcome } from "../../runtime/pipeline/types.js";
import { names } from "../../runtime/subjects.js";
import type { Held } from "./lane.js";

/** What became of a dispatch, for the caller's counters. */
export type Settled = "delivered" | "retrying" | "dead" | "requeued";

/** While no processor is running, the message is offered again this often, ms. */
const NO_PROCESSOR_RETRY_MS = 1000;
/** Successor writes that fail are tried again after these delays (the last repeats), ms. */
const WRITE_RETRY_MS = [100, 250, 500, 1000, 2000, 5000];

export class Dispatcher {
  private readonly rpc: Rpc;

  constructor(
    nc: NatsConnection,
    private readonly io: QueueIO,
    private readonly config: HeraldConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** False once the actor drains: waits end, and what is unsettled goes back to the stream. */
    private readonly running: () => boolean,
  ) {
    this.rpc = new Rpc(nc, names(config.subjectPrefix).nodeInbox);
  }

  close(): void {
    this.rpc.close();
  }

  /** Pushes the held message (one more attempt) and settles it. */
  async dispatch(h: Held): Promise<Settled> {
    const attempt: Envelope = { ...h.env, attempts: h.env.attempts + 1 };
    const outcome = await this.push(attempt);
    if (outcome === undefined) {
      h.m.nak();
      return "requeued";
    }
    return this.settle(h, attempt, decideSettlement(outcome, attempt, this.config.pipeline.retry));
  }

  /** The outcome of one attempt; undefined when the actor stopped while no processor was running. */
  private async push(attempt: Envelope): Promise<Outcome | undefined> {
    for (;;) {
      try {
        const reply = await this.rpc.request(this.io.names.process, encode(attempt), processTimeoutMs(this.config, attempt.topic));
        return decode<Outcome>(reply.data);
      } catch (err) {
        if (!(err instanceof NoRespondersError)) return { outcome: "retry", reason: `no answer from a processor: ${errorText(err)}` };
        // Not the message's fault: it keeps its attempts and waits here until processors are back.
        this.log.warn("no processor actor is running; holding the message", { id: attempt.id });
        if (!(await this.pause(NO_PROCESSOR_RETRY_MS))) return undefined;
      }
    }
  }

  /** Carries out `s` on `h`: successor record first, then the ack. */
  async settle(h: Held, env: Envelope, s: Settlement): Promise<Settled> {
    const { m } = h;
    for (let failures = 0; ; failures++) {
      try {
        switch (s.action) {
          case "ack":
            m.ack();
            return "delivered";
          case "retry":
            await this.io.exception({
              envelope: env,
              error: s.error,
              attempts: env.attempts,
              firstFailedAt: h.entry?.firstFailedAt ?? this.clock.wall(),
              delayMs: s.delayMs,
            });
            m.ack();
            return "retrying";
          case "dead":
            await this.writeLetter(this.letter(env, s.reason, s.error), `${env.topic}:${env.id}:${m.info.stream}:${m.info.streamSequence}`, originalOf(m, this.config.subjectPrefix, h.entry));
            m.ack();
            return "dead";
        }
      } catch (err) {
        if (err instanceof TooLargeError && s.action === "retry") {
          // Resending cannot make it smaller: a permanent failure.
          s = { action: "dead", reason: "too-large", error: `cannot be retried (${err.message}); the failure was: ${s.error}` };
          continue;
        }
        if (!(await this.writeFailed(h, failures, err))) return "requeued";
      }
    }
  }

  /** Dead-letters a stored message that never became a dispatchable envelope, then acks it. */
  async deadInput(h: Pick<Held, "m">, dl: DeadLetter, original?: Original): Promise<void> {
    for (let failures = 0; ; failures++) {
      try {
        await this.writeLetter(dl, `${dl.id}:${h.m.info.stream}:${h.m.info.streamSequence}`, original);
        h.m.ack();
        return;
      } catch (err) {
        if (!(await this.writeFailed(h, failures, err))) return;
      }
    }
  }

  private async writeLetter(dl: DeadLetter, msgId: string, original: Original | undefined): Promise<void> {
    await this.io.deadLetter(dl, msgId, original);
    this.log.warn("dead letter", { id: dl.id, topic: dl.topic, reason: dl.reason, error: dl.error });
  }

  private letter(env: Envelope, reason: DeadLetter["reason"], error: string): DeadLetter {
    return { id: env.id, topic: env.topic, reason, error, attempts: env.attempts, deadAt: this.clock.wall(), envelope: env };
  }

  /** Logs a failed write and waits before the next try; false (message handed back) once draining. */
  private async writeFailed(h: Pick<Held, "m">, failures: number, err: unknown): Promise<boolean> {
    const delay = WRITE_RETRY_MS[Math.min(failures, WRITE_RETRY_MS.length - 1)]!;
    const log = failures === 0 ? this.log.warn : this.log.debug;
    log("could not record the outcome; trying again", { seq: h.m.info.streamSequence, retryInMs: delay, error: errorText(err) });
    if (await this.pause(delay)) return true;
    h.m.nak();
    return false;
  }

  /** Waits `ms` unless the actor stops; true if still running. */
  private async pause(ms: number): Promise<boolean> {
    const until = this.clock.monotonic() + ms;
    while (this.running() && this.clock.monotonic() < until) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, until - this.clock.monotonic()))));
    }
    return this.running();
  }
}
