/**
 * When a collector's next collection starts. Pure: the runner passes the elapsed time.
 *
 * Collections start every `intervalMs` (the seed's T), measured start to start, so a slow source
 * does not stretch the period; one that takes longer than T is followed at once. A failing source
 * backs off: the n-th consecutive failure waits intervalMs × 2^(n−1), capped at backoffMaxMs (but
 * never less than intervalMs), so a database that is down is not hammered and is picked up again
 * soon after it returns.
 */

export interface ScheduleInput {
  /** The seed's T, in ms. */
  intervalMs: number;
  /** Cap of the backoff, in ms. */
  backoffMaxMs: number;
  /** Consecutive failed collections so far (0 after a success). */
  failures: number;
  /** How long the collection that just ended took, in ms. */
  elapsedMs: number;
}

/** ms to wait before the next collection starts. */
export function nextDelayMs(s: ScheduleInput): number {
  return Math.max(0, periodMs(s) - s.elapsedMs);
}

/** Start-to-start period after `failures` consecutive failures. */
export function periodMs(s: Pick<ScheduleInput, "intervalMs" | "backoffMaxMs" | "failures">): number {
  if (s.failures <= 0) return s.intervalMs;
  const cap = Math.max(s.intervalMs, s.backoffMaxMs);
  // 2^30 × any interval is past every cap: stop doubling before it overflows.
  return Math.min(cap, s.intervalMs * 2 ** Math.min(s.failures - 1, 30));
}
