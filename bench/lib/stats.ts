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

/** CPU time (user + system) a process has used so far, in seconds; undefined off Linux. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const { readFile } = await import("node:fs/promises");
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS_PER_SEC = 100;

/**
 * CPU spent per message over a measured window, in µs, by who spent it: the benchmark's own
 * process (publisher and sink), the nats-server(s), and the Herald node processes. Everything
 * shares the same cores, so this says where the time goes, and what the baseline itself costs.
 */
export type CpuPerMessage = Record<"harness" | "nats" | "herald", number | undefined>;

/** Starts a CPU window over these processes; `end(count)` gives µs per message for each group. */
export async function cpuWindow(pids: { nats: readonly number[]; herald: readonly number[] }): Promise<{ end(count: number): Promise<CpuPerMessage> }> {
  const sum = async (list: readonly number[]) => {
    let total = 0;
    for (const pid of list) {
      const s = await cpuSeconds(pid);
      if (s === undefined) return undefined;
      total += s;
    }
    return total;
  };
  const harness0 = process.cpuUsage();
  const nats0 = await sum(pids.nats);
  const herald0 = await sum(pids.herald);
  return {
    async end(count: number) {
      const h = process.cpuUsage(harness0);
      const nats1 = await sum(pids.nats);
      const herald1 = await sum(pids.herald);
      const perMsg = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : ((b - a) * 1e6) / count);
      return {
        harness: (h.user + h.system) / count,
        nats: perMsg(nats0, nats1),
        herald: pids.herald.length === 0 ? undefined : perMsg(herald0, herald1),
      };
    },
  };
}

export const log = (line: string) => process.stderr.write(`${line}\n`);
