/** Waiting on a condition with a deadline: tests, benchmarks and drills never sleep to synchronise. */
export interface WaitForOptions {
  /** Give up after this many ms. */
  timeoutMs: number;
  /** Pause between attempts, in ms. @defaultValue 25 */
  intervalMs?: number;
  /** What is awaited, for the timeout message ("the message on herald.out.demo"). */
  what: string;
}

/**
 * Calls `fn` until it returns a truthy value and resolves with that value. A throw counts as "not
 * yet"; on timeout the error names `what` and carries the last thrown error.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions): Promise<T> {
  const interval = opts.intervalMs ?? 25;
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      // An attempt that never settles must not outlive the deadline (the test would just hang).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const remaining = Math.max(1, deadline - Date.now());
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`an attempt did not settle within ${remaining}ms`)), remaining);
      });
      try {
        const value = await Promise.race([Promise.resolve().then(fn), stuck]);
        if (value) return value;
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const because = lastError === undefined ? "" : ` (last error: ${errorMessage(lastError)})`;
      throw new Error(`timed out after ${opts.timeoutMs}ms waiting for ${opts.what}${because}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
