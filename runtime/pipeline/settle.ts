/**
 * What becomes of a queued message once its push has an outcome: a pure decision, so every case
 * is unit-tested; the dispatcher only carries it out (successor record first, then the ack).
 */
import type { ChannelOutcome, DeadReason, Envelope, Outcome } from "./types.js";

/** The retry policy in force for a message: its topic's `retry` over `pipeline.retry`. */
export interface RetryPolicy {
  /** Delay before retry n (ms); the last value repeats. */
  backoffMs: readonly number[];
  /** Push attempts before the message becomes a dead letter (reason `exhausted`). */
  maxAttempts: number;
  /** HTTP statuses of a webhook's answer that make its failure permanent (reason `rejected`). @defaultValue none */
  abortOn?: readonly number[];
}

/** A topic's own `retry` keys, any of them left out. */
export interface TopicRetry {
  backoffMs?: readonly number[] | undefined;
  maxAttempts?: number | undefined;
  abortOn?: readonly number[] | undefined;
}

/**
 * The policy of a topic: each key of its `retry` that it sets, else the pipeline's. `abortOn` has
 * no pipeline-wide value: without the topic's, no status stops retries.
 */
export function retryPolicy(pipeline: RetryPolicy, topic: TopicRetry | undefined): RetryPolicy {
  if (topic === undefined) return pipeline;
  return {
    backoffMs: topic.backoffMs ?? pipeline.backoffMs,
    maxAttempts: topic.maxAttempts ?? pipeline.maxAttempts,
    ...(topic.abortOn === undefined ? {} : { abortOn: topic.abortOn }),
  };
}

export type Settlement =
  /** Delivered: ack the message. */
  | { action: "ack" }
  /** Transient failure: write an exception entry due after `delayMs`, then ack. */
  | { action: "retry"; delayMs: number; error: string }
  /** Permanent failure or retries used up: write a dead letter, then ack. */
  | { action: "dead"; reason: DeadReason; error: string }
  /** A fan-out message, channel by channel: {@link FanoutSettlement}. */
  | FanoutSettlement;

/**
 * A fan-out message's channels, each settled on its own: a dead letter for each channel in `dead`
 * (its envelope naming that channel alone), ONE exception entry for the channels in `retry` (its
 * envelope naming those), then the ack. With neither, it is an ack.
 */
export interface FanoutSettlement {
  action: "split";
  delivered: string[];
  retry?: { channels: string[]; delayMs: number; error: string };
  dead: { channel: string; reason: DeadReason; error: string }[];
}

/**
 * @param env the envelope as pushed: `attempts` already counts this attempt.
 */
export function decideSettlement(outcome: Outcome, env: Envelope, policy: RetryPolicy): Settlement {
  switch (outcome.outcome) {
    case "delivered":
      return { action: "ack" };
    case "dead":
      return { action: "dead", reason: outcome.reason, error: outcome.error };
    case "retry":
      if (outcome.status !== undefined && policy.abortOn?.includes(outcome.status)) {
        return { action: "dead", reason: "rejected", error: `${outcome.reason} (${outcome.status} is in the topic's retry.abortOn: not retried)` };
      }
      if (env.attempts >= policy.maxAttempts) {
        return { action: "dead", reason: "exhausted", error: `gave up after ${env.attempts} attempts; last error: ${outcome.reason}` };
      }
      return { action: "retry", delayMs: outcome.retryAfterMs ?? backoffDelay(policy.backoffMs, env.attempts), error: outcome.reason };
  }
}

/**
 * Settles a fan-out message from the outcome of each channel it pushed: each is decided as a
 * message of its own would be ({@link decideSettlement}: the topic's schedule, `maxAttempts`,
 * `abortOn`). The channels to retry share one exception entry, due after the longest of their
 * delays, so no receiver is asked again before its `Retry-After`.
 *
 * Attempts are counted per message (`env.attempts`), as for any message: every channel still
 * pending was pushed at every attempt, so the count is also each pending channel's own.
 */
export function decideFanout(outcomes: readonly ChannelOutcome[], env: Envelope, policy: RetryPolicy): FanoutSettlement {
  const settled: FanoutSettlement = { action: "split", delivered: [], dead: [] };
  const retries: { channel: string; delayMs: number; error: string }[] = [];
  for (const { channel, outcome } of outcomes) {
    const s = decideSettlement(outcome, env, policy);
    if (s.action === "ack") settled.delivered.push(channel);
    else if (s.action === "retry") retries.push({ channel, delayMs: s.delayMs, error: s.error });
    else if (s.action === "dead") settled.dead.push({ channel, reason: s.reason, error: s.error });
  }
  if (retries.length > 0) {
    settled.retry = {
      channels: retries.map((r) => r.channel),
      delayMs: Math.max(...retries.map((r) => r.delayMs)),
      error: retries.map((r) => `${r.channel}: ${r.error}`).join("; "),
    };
  }
  return settled;
}

/** The delay before retry number `attempt` (1-based) on the schedule; the last value repeats. */
export function backoffDelay(schedule: readonly number[], attempt: number): number {
  return schedule[Math.min(Math.max(attempt, 1) - 1, schedule.length - 1)] ?? 0;
}
