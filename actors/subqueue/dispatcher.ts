/**
 * Drives a batch of held messages of one topic forward: a processor renders them, a pusher pushes
 * the rendered ones, and each outcome is settled on its message's stream record: delivered → ack;
 * transient failure → exception queue; permanent failure or retries exhausted → dead letters. The
 * decision is runtime/pipeline/settle.ts; the contracts with the actors are
 * runtime/pipeline/work.ts; this file carries the delivery out, in that order, in one place.
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
import { pushTimeoutMs, renderTimeoutMs } from "../../runtime/pipeline/deadlines.js";
import type { Original, QueueIO } from "../../runtime/pipeline/queue-io.js";
import { decideFanout, decideSettlement, retryPolicy, type FanoutSettlement, type RetryPolicy, type Settlement } from "../../runtime/pipeline/settle.js";
import { originalOf } from "../../runtime/pipeline/stored.js";
import type { DeadLetter } from "../../runtime/pipeline/streams.js";
import type { ChannelOutcome, Envelope, FanoutOutcome, Outcome, PushMessage } from "../../runtime/pipeline/types.js";
import { batchPayload, type PushReply, type RenderReply } from "../../runtime/pipeline/work.js";
import type { Held } from "./lane.js";
import type { SubQueueMetrics } from "./metrics.js";
import { names } from "../../runtime/names.js";

/** What became of a dispatch, for the caller's counters. */
export type Settled = "delivered" | "retrying" | "dead" | "requeued";

/** What became of one message's push: an outcome, or for a fan-out message one per channel. */
type Delivery = Outcome | FanoutOutcome;

/** While no processor or pusher is running, the batch is offered again this often, ms. */
const NO_RESPONDER_RETRY_MS = 1000;
/** Successor writes that fail are tried again after these delays (the last repeats), ms. */
const WRITE_RETRY_MS = [100, 250, 500, 1000, 2000, 5000];

/**
 * Indices of `items` in consecutive groups whose bytes stay within `maxBytes` (an item larger than
 * that is a group of its own): requests that fit the server's max_payload with room to spare.
 */
export function bySize(items: readonly Uint8Array[], maxBytes: number): number[][] {
  const groups: number[][] = [];
  let bytes = Infinity;
  items.forEach((b, i) => {
    if (bytes + b.length > maxBytes) {
      groups.push([]);
      bytes = 0;
    }
    groups.at(-1)!.push(i);
    bytes += b.length;
  });
  return groups;
}

export class Dispatcher {
  private readonly rpc: Rpc;
  /** Largest request a batch is sent in: a quarter of what the server accepts (replies grow). */
  private readonly batchBytes: number;
  /** Each topic's retry policy: its `retry` over `pipeline.retry`. */
  private readonly policies: Map<string, RetryPolicy>;

  constructor(
    nc: NatsConnection,
    private readonly io: QueueIO,
    private readonly config: HeraldConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** False once the actor drains: waits end, and what is unsettled goes back to the stream. */
    private readonly running: () => boolean,
    private readonly metrics?: SubQueueMetrics,
  ) {
    this.rpc = new Rpc(nc, names(config.subjectPrefix).nodeInbox);
    this.batchBytes = Math.max(4096, Math.floor(io.payloadRoom / 4));
    this.policies = new Map(Object.entries(config.topics).map(([name, t]) => [name, retryPolicy(config.pipeline.retry, t.retry)]));
  }

  close(): void {
    this.rpc.close();
  }

  /**
   * Pushes a batch of one topic's held messages (one more attempt each) and settles every one.
   * Resolves with each message's fate, in batch order.
   */
  async dispatch(batch: Held[]): Promise<Settled[]> {
    const attempts: Envelope[] = batch.map((h) => ({ ...h.env, attempts: h.env.attempts + 1 }));
    const outcomes = await this.deliver(attempts);
    if (outcomes === undefined) {
      for (const h of batch) h.m.nak();
      return batch.map(() => "requeued");
    }
    const policy = this.policies.get(batch[0]?.env.topic ?? "") ?? this.config.pipeline.retry;
    return Promise.all(batch.map((h, i) => this.settle(h, attempts[i]!, decide(outcomes[i]!, attempts[i]!, policy))));
  }

  /**
   * Render, then push: one outcome per envelope. Undefined when the actor stopped while no
   * processor or pusher was running (the batch goes back to the stream, attempts unspent).
   */
  private async deliver(attempts: Envelope[]): Promise<Delivery[] | undefined> {
    const encoded = attempts.map((e) => encode(e));
    const groups = bySize(encoded, this.batchBytes);
    if (groups.length > 1) {
      // Too much for one request: each part goes its own way, and the outcomes are put back in order.
      const parts = await Promise.all(groups.map((g) => this.deliverGroup(g.map((i) => attempts[i]!), g.map((i) => encoded[i]!))));
      if (parts.some((p) => p === undefined)) return undefined;
      const out: Delivery[] = [];
      groups.forEach((g, k) => g.forEach((i, j) => (out[i] = parts[k]![j]!)));
      return out;
    }
    return this.deliverGroup(attempts, encoded);
  }

  private async deliverGroup(attempts: Envelope[], encoded: Uint8Array[]): Promise<Delivery[] | undefined> {
    const topic = attempts[0]!.topic;
    const rendered = await this.hop<RenderReply>(this.io.names.process, batchPayload("envelopes", encoded), renderTimeoutMs(), "a processor");
    if (rendered === undefined) return undefined;
    if ("failed" in rendered) return attempts.map(() => ({ outcome: "retry", reason: rendered.failed }));
    const outcomes: (Delivery | undefined)[] = rendered.reply.rendered.map((r) =>
      r.ok ? undefined : { outcome: "dead", reason: r.reason, error: r.error },
    );
    const messages: PushMessage[] = [];
    /** Of a fan-out message that is pushed: the channels that did not render, by its place in `messages`. */
    let unrendered: ChannelOutcome[][] | undefined;
    rendered.reply.rendered.forEach((r, i) => {
      if (!r.ok) return;
      if (r.message.channels?.length === 0) outcomes[i] = { channels: r.failed ?? [] };
      else {
        if (r.failed !== undefined) (unrendered ??= [])[messages.length] = r.failed;
        messages.push(r.message);
      }
    });
    if (messages.length > 0) {
      const fromPusher = await this.pushAll(topic, messages);
      if (fromPusher === undefined) return undefined;
      let next = 0;
      for (let i = 0; i < outcomes.length; i++) {
        if (outcomes[i] !== undefined) continue;
        const failed = unrendered?.[next];
        outcomes[i] = failed === undefined ? fromPusher[next]! : withUnrendered(fromPusher[next]!, messages[next]!, failed);
        next++;
      }
    }
    return outcomes as Delivery[];
  }

  /** One outcome per message, pushed in requests that fit; undefined if stopped meanwhile. */
  private async pushAll(topic: string, messages: PushMessage[]): Promise<Delivery[] | undefined> {
    const encoded = messages.map((m) => encode(m));
    const parts = await Promise.all(
      bySize(encoded, this.batchBytes).map(async (g) => {
        const pushed = await this.hop<PushReply>(this.io.names.push, batchPayload("messages", g.map((i) => encoded[i]!), { topic }), pushTimeoutMs(this.config, topic), "a pusher");
        if (pushed === undefined) return undefined;
        const outcomes: Delivery[] = "failed" in pushed ? g.map(() => ({ outcome: "retry", reason: pushed.failed })) : pushed.reply.outcomes;
        return g.map((i, j) => [i, outcomes[j]!] as const);
      }),
    );
    if (parts.some((p) => p === undefined)) return undefined;
    const out: Delivery[] = [];
    for (const part of parts) for (const [i, o] of part!) out[i] = o;
    return out;
  }

  /**
   * One request to a processor or a pusher. No responders is not the messages' fault: the batch
   * keeps its attempts and waits here until the actors are back (undefined if the actor stops
   * meanwhile). Any other failure is a transient one for every message of the batch.
   */
  private async hop<R>(subject: string, data: Uint8Array, timeoutMs: number, who: string): Promise<{ reply: R } | { failed: string } | undefined> {
    for (let warned = false; ; warned = true) {
      try {
        const reply = decode<R & { error?: string }>((await this.rpc.request(subject, data, timeoutMs)).data);
        if (typeof reply?.error === "string") return { failed: `${who} could not read the batch: ${reply.error}` };
        return { reply };
      } catch (err) {
        if (!(err instanceof NoRespondersError)) return { failed: `no answer from ${who}: ${errorText(err)}` };
        if (!warned) this.log.warn(`no ${who.replace(/^a /, "")} actor is running; holding the messages`, { subject });
        if (!(await this.pause(NO_RESPONDER_RETRY_MS))) return undefined;
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
            this.metrics?.settled(env, s);
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
            this.metrics?.settled(env, s);
            return "retrying";
          case "dead":
            await this.writeLetter(this.letter(env, s.reason, s.error), `${env.topic}:${env.id}:${m.info.stream}:${m.info.streamSequence}`, originalOf(m, this.config.subjectPrefix, h.entry));
            m.ack();
            this.metrics?.settled(env, s);
            return "dead";
          case "split":
            return await this.settleChannels(h, env, s);
        }
      } catch (err) {
        if (err instanceof TooLargeError && s.action === "retry") {
          // Resending cannot make it smaller: a permanent failure.
          s = { action: "dead", reason: "too-large", error: `cannot be retried (${err.message}); the failure was: ${s.error}` };
          continue;
        }
        if (err instanceof TooLargeError && s.action === "split" && s.retry !== undefined) {
          const { channels, error } = s.retry;
          const dead = channels.map((channel) => ({ channel, reason: "too-large" as const, error: `cannot be retried (${err.message}); the failure was: ${error}` }));
          s = { action: "split", delivered: s.delivered, dead: [...s.dead, ...dead] };
          continue;
        }
        if (!(await this.writeFailed(h, failures, err))) return "requeued";
      }
    }
  }

  /**
   * Carries out a fan-out message's settlement: a dead letter per channel that failed for good
   * (its envelope names that channel alone, so a replay delivers only it), then one exception
   * entry for the channels to retry, then the ack. Letters are deduplicated per channel, so
   * writing them again after a failed write adds none.
   */
  private async settleChannels(h: Held, env: Envelope, s: FanoutSettlement): Promise<Settled> {
    const { m } = h;
    for (const d of s.dead) {
      const own: Envelope = { ...env, channels: [d.channel] };
      const original: Original = { subject: this.io.names.in(env.topic), data: encode({ ...own, attempts: 0 }), envelopeHeader: true };
      const msgId = `${env.topic}:${env.id}:${m.info.stream}:${m.info.streamSequence}:${d.channel}`;
      await this.writeLetter({ ...this.letter(own, d.reason, d.error), channel: d.channel }, msgId, original);
    }
    if (s.retry !== undefined) {
      await this.io.exception({
        envelope: { ...env, channels: s.retry.channels },
        error: s.retry.error,
        attempts: env.attempts,
        firstFailedAt: h.entry?.firstFailedAt ?? this.clock.wall(),
        delayMs: s.retry.delayMs,
      });
    }
    m.ack();
    this.metrics?.settled(env, s);
    return s.retry !== undefined ? "retrying" : s.dead.length > 0 ? "dead" : "delivered";
  }

  /** Dead-letters a stored message that never became a dispatchable envelope, then acks it. */
  async deadInput(h: Pick<Held, "m">, dl: DeadLetter, original?: Original): Promise<void> {
    for (let failures = 0; ; failures++) {
      try {
        await this.writeLetter(dl, `${dl.id}:${h.m.info.stream}:${h.m.info.streamSequence}`, original);
        h.m.ack();
        this.metrics?.dead(dl.topic, dl.reason);
        return;
      } catch (err) {
        if (!(await this.writeFailed(h, failures, err))) return;
      }
    }
  }

  private async writeLetter(dl: DeadLetter, msgId: string, original: Original | undefined): Promise<void> {
    await this.io.deadLetter(dl, msgId, original);
    const where = dl.channel === undefined ? { topic: dl.topic } : { topic: dl.topic, channel: dl.channel };
    this.log.warn("dead letter", { id: dl.id, ...where, reason: dl.reason, error: dl.error });
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

/** The settlement of one message's push: channel by channel for a fan-out message. */
function decide(d: Delivery, env: Envelope, policy: RetryPolicy): Settlement {
  return "channels" in d ? decideFanout(d.channels, env, policy) : decideSettlement(d, env, policy);
}

/**
 * A fan-out message's outcome with the channels that did not render added. A pusher that could
 * not be asked answered for the message as a whole: that outcome is then each pushed channel's.
 */
function withUnrendered(pushed: Delivery, message: PushMessage, unrendered: ChannelOutcome[]): FanoutOutcome {
  const outcomes = "channels" in pushed ? pushed.channels : (message.channels ?? []).map((c) => ({ channel: c.channel, outcome: pushed }));
  return { channels: [...outcomes, ...unrendered] };
}
