/**
 * What becomes of a queued message once its push has an outcome: a pure decision, so every case
 * is unit-tested; the dispatcher only carries it out (successor record first, then the ack).
 */
import type { DeadReason, Envelope, Outcome } from "./types.js";

/** The retry policy in force for a message (`pipeline.retry`). */
export interface RetryPolicy {
  /** Delay before retry n (ms); the last value repeats. */
  backoffMs: readonly number[];
  /** Push attempts before the message becomes a dead letter (reason `exhausted`). */
  maxAttempts: number;
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
