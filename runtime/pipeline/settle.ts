/**
 * What becomes of a queued message once its push has an outcome: a pure decision, so every case
 * is unit-tested; the dispatcher only carries it out (successor record first, then the ack).
 */
import type { DeadReason, Envelope, Outcome } from "./types.js";

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
  | { action: "dead"; reason: DeadReason; error: string };

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

/** The delay before retry number `attempt` (1-based) on the schedule; the last value repeats. */
export function backoffDelay(schedule: readonly number[], attempt: number): number {
  return schedule[Math.min(Math.max(attempt, 1) - 1, schedule.length - 1)] ?? 0;
}
