/**
 * When to restart a crashed actor, and when to give up (pure; times are injected).
 *
 * Like Erlang/OTP's restart intensity: more than `intensity` crashes within `periodMs` means the
 * actor is failing for a reason a restart won't fix, so it is reported `failed` instead of
 * looping. Below that, restarts back off: the first crash in a period restarts after
 * `initialDelayMs`, later ones after 100 ms, 200 ms, 400 ms … capped at `maxDelayMs`.
 */
export interface RestartOptions {
  /** Delay before restarting after the first crash in a period, ms. @defaultValue 0 */
  initialDelayMs: number;
  /** Cap on the backoff, ms. @defaultValue 5000 */
  maxDelayMs: number;
  /** Crashes allowed within `periodMs` before the actor is marked failed. @defaultValue 10 */
  intensity: number;
  /** Window over which crashes are counted, ms. @defaultValue 60000 */
  periodMs: number;
}

export type RestartDecision = { action: "restart"; delayMs: number } | { action: "fail"; crashes: number };

const BACKOFF_BASE_MS = 100;

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(private readonly opts: RestartOptions) {}

  /** Records a crash at `nowMs` and says what to do. */
  onCrash(nowMs: number): RestartDecision {
    this.crashes = this.crashes.filter((t) => nowMs - t < this.opts.periodMs);
    this.crashes.push(nowMs);
    const n = this.crashes.length;
    if (n > this.opts.intensity) return { action: "fail", crashes: n };
    if (n === 1) return { action: "restart", delayMs: this.opts.initialDelayMs };
    const backoff = Math.max(this.opts.initialDelayMs, BACKOFF_BASE_MS) * 2 ** (n - 2);
    return { action: "restart", delayMs: Math.min(this.opts.maxDelayMs, backoff) };
  }

  /** Crashes counted in the current period. */
  recent(nowMs: number): number {
    return this.crashes.filter((t) => nowMs - t < this.opts.periodMs).length;
  }
}
