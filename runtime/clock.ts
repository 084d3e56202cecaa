/**
 * The two clocks Herald reads, passed in wherever time decides something, so tests can skew or
 * freeze them.
 *
 * Which clock for which decision:
 * - `monotonic`: every duration one process measures itself — sub-queue windows (from when this
 *   node received the message), liveness, the lease, RPC deadlines, backoff. It never jumps and
 *   means nothing outside the process.
 * - `wall`: only what is shown to people or matched against a calendar (`createdAt`, `deadAt`,
 *   calendar rules, the webhook timestamp). Never compared with a time another host wrote.
 * - Times that cross hosts (when an exception entry is due) are kept by the JetStream server as
 *   durations (`nak(delay)`), so no host's wall clock is compared with another's.
 */
import { monotonicNow } from "./platform/index.js";

export interface Clock {
  /** ms since the epoch, by this host's wall clock. */
  wall(): number;
  /** ms on this process's monotonic clock (an arbitrary origin). */
  monotonic(): number;
}

export const systemClock: Clock = {
  wall: () => Date.now(),
  monotonic: monotonicNow,
};
