/**
 * The peer: BullMQ on Redis, adding and processing no-op jobs (concurrency 50), when a Redis
 * answers on 127.0.0.1:6379.
 */
import { connect } from "node:net";
import type { ThroughputResult } from "./raw.js";

export interface BullResult extends ThroughputResult {
  addPerSec: number;
}

export function redisReachable(host = "127.0.0.1", port = 6379): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export async function bullmq(count: number): Promise<BullResult> {
  const { Queue, Worker } = await import("bullmq");
  const { Redis } = await import("ioredis");
  // BullMQ wants constructed clients under native ESM; workers block, so each gets its own.
  const client = () => new Redis({ host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null });
  const name = `herald-bench-${process.pid}-${Date.now()}`;
  const queue = new Queue(name, { connection: client() });
  const lat: number[] = [];
  let done = 0;
  let finish: () => void = () => undefined;
  const all = new Promise<void>((r) => (finish = r));
  const t0 = performance.now();
  const worker = new Worker(
    name,
    async (job) => {
      lat.push(Date.now() - job.timestamp);
      if (++done === count) finish();
    },
    { connection: client(), concurrency: 50 },
  );
  try {
    for (let i = 0; i < count; i += 1000) {
      const n = Math.min(1000, count - i);
      await queue.addBulk(Array.from({ length: n }, (_, k) => ({ name: "noop", data: { i: i + k } })));
    }
    const added = performance.now();
    await all;
    const secs = (performance.now() - t0) / 1000;
    const s = [...lat].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
    return { msgsPerSec: count / secs, addPerSec: count / ((added - t0) / 1000), p50: q(0.5), p95: q(0.95), p99: q(0.99) };
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}
