/**
 * Sends one message to a processor (which renders it and has a pusher deliver it) and settles the
 * outcome on the message's stream record: delivered → ack; transient failure → exception queue;
 * permanent failure or retries exhausted → dead letters. The successor record is made durable
 * before the message is acked, so a crash between the two duplicates, never loses.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { decode, encode } from "../../runtime/codec.js";
import type { HeraldConfig } from "../../runtime/config/index.js";
import { errorText } from "../../runtime/errors.js";
import { NoRespondersError, Rpc } from "../../runtime/nats/rpc.js";
import { processTimeoutMs } from "../../runtime/pipeline/deadlines.js";
import type { Logger } from "../../runtime/log.js";
import { backoffDelay, QueueIO } from "../../runtime/pipeline/queue-io.js";
import type { DeadLetter } from "../../runtime/pipeline/streams.js";
import type { DeadReason, Envelope, Outcome } from "../../runtime/pipeline/types.js";

/** What became of a dispatch, for the caller's counters. */
export type Settled = "delivered" | "retrying" | "dead" | "requeued";

/** When no processor is running, the message goes back to the queue for this long. */
const NO_PROCESSOR_DELAY_MS = 2000;

export class Dispatcher {
  private readonly rpc: Rpc;

  constructor(
    nc: NatsConnection,
    private readonly io: QueueIO,
    private readonly config: HeraldConfig,
    private readonly log: Logger,
  ) {
    this.rpc = new Rpc(nc);
  }

  close(): void {
    this.rpc.close();
  }

  /** Pushes `env` (one more attempt) and settles `m`, a queue or exception-queue record. */
  async dispatch(m: JsMsg, env: Envelope): Promise<Settled> {
    const attempt: Envelope = { ...env, attempts: env.attempts + 1 };
    let outcome: Outcome;
    try {
      const reply = await this.rpc.request(this.io.names.process, encode(attempt), processTimeoutMs(this.config, env.topic));
      outcome = decode<Outcome>(reply.data);
    } catch (err) {
      if (err instanceof NoRespondersError) {
        // Not the message's fault: it keeps its attempts and comes back when processors do.
        this.log.warn("no processor actor is running; message returned to the queue", { id: env.id });
        m.nak(NO_PROCESSOR_DELAY_MS);
        return "requeued";
      }
      outcome = { outcome: "retry", reason: `no answer from a processor: ${errorText(err)}` };
    }
    return this.settle(m, attempt, outcome);
  }

  /** Records the outcome durably, then acks `m`; if recording fails, `m` comes back later. */
  async settle(m: JsMsg, env: Envelope, outcome: Outcome): Promise<Settled> {
    try {
      if (outcome.outcome === "delivered") {
        m.ack();
        return "delivered";
      }
      if (outcome.outcome === "retry") {
        const retry = this.config.pipeline.retry;
        if (env.attempts >= retry.maxAttempts) {
          await this.dead(m, env, "exhausted", `gave up after ${env.attempts} attempts; last error: ${outcome.reason}`);
          return "dead";
        }
        const delay = outcome.retryAfterMs ?? backoffDelay(retry.backoffMs, env.attempts);
        const now = Date.now();
        await this.io.exception({
          envelope: env,
          error: outcome.reason,
          attempts: env.attempts,
          firstFailedAt: now,
          nextAttemptAt: now + delay,
        });
        m.ack();
        return "retrying";
      }
      await this.dead(m, env, outcome.reason, outcome.error);
      return "dead";
    } catch (err) {
      this.log.error("could not record the outcome; the message will be redelivered", { id: env.id, error: errorText(err) });
      m.nak(1000);
      return "requeued";
    }
  }

  /** Writes a dead letter for `env` and acks `m`. */
  async dead(m: JsMsg, env: Envelope, reason: DeadReason, error: string): Promise<void> {
    const dl: DeadLetter = { id: env.id, topic: env.topic, reason, error, attempts: env.attempts, deadAt: Date.now(), envelope: env };
    await this.io.deadLetter(dl, `${env.id}:${m.info.stream}:${m.info.streamSequence}`);
    this.log.warn("dead letter", { id: env.id, topic: env.topic, reason, error });
    m.ack();
  }

  /** Dead-letters input that never became an envelope, then acks it. */
  async deadInput(m: JsMsg, dl: DeadLetter): Promise<void> {
    try {
      await this.io.deadLetter(dl, `${dl.id}:${m.info.stream}`);
      this.log.warn("dead letter", { id: dl.id, topic: dl.topic, reason: dl.reason, error: dl.error });
      m.ack();
    } catch (err) {
      this.log.error("could not record a dead letter; the input will be redelivered", { id: dl.id, error: errorText(err) });
      m.nak(1000);
    }
  }

}
