/** Small statistics helpers for the benchmarks. */

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
}

export function percentiles(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

export interface Spread {
  n: number;
  p50: number;
  max: number;
  all: number[];
}

export function spread(samples: number[]): Spread {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN, all: samples.map(Math.round) };
}

/** Publishes ids 0…count-1 with at most `inflight` acks outstanding (full speed). */
export async function publishFullSpeed(count: number, inflight: number, publish: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await publish(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, worker));
}

/** Publishes ids 0…count-1 at `ratePerSec`, in 10 ms slices, acks awaited in the background. */
export async function publishAtRate(count: number, ratePerSec: number, publish: (i: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  let next = 0;
  while (next < count) {
    const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * ratePerSec) + 1);
    while (next < due) pending.push(publish(next++));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(pending);
}

/** Peak resident set (VmHWM) of a process, in MiB; undefined off Linux. */
export async function peakRssMiB(pid: number): Promise<number | undefined> {
  try {
    const { readFile } = await import("node:fs/promises");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Math.round(Number(kb) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

export const log = (line: string) => process.stderr.write(`${line}\n`);
