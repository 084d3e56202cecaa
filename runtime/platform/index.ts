/**
 * The one place where Node and Deno differ for actors. Node runs actors on `worker_threads`
 * (with `exit` events); Deno runs them as Web Workers, which have no exit event, so a dead Deno
 * worker is found by its `error` event or by the supervisor's ping timeout.
 */
import type { Endpoint } from "comlink";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import { Worker as NodeWorker, parentPort } from "node:worker_threads";

export const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** Why a worker ended: an exit code (Node), an uncaught error, or both. */
export interface WorkerEnd {
  code?: number;
  error?: Error;
}

export interface WorkerThread {
  /** comlink endpoint for the supervisor's control calls. */
  endpoint: Endpoint;
  /** Called once when the worker ends, for whatever reason. */
  onEnd(listener: (end: WorkerEnd) => void): void;
  /** Ends the thread at once. */
  terminate(): Promise<void>;
}

/** Starts `entry` (a compiled ES module) in a new thread. */
export function spawnWorker(entry: URL, name: string): WorkerThread {
  return isDeno ? spawnWebWorker(entry, name) : spawnNodeWorker(entry, name);
}

/**
 * V8's young generation, kept small in every isolate of a node. By default each isolate may grow
 * it to 48 MiB under load (3 × a 16 MiB semi-space), and a node has five or six isolates: at full
 * speed that was most of the difference between idle and peak RSS. With these limits a one-node
 * bench peaked at 174–176 MiB instead of 225–231 MiB, throughput within the run-to-run spread
 * (BENCHMARKS.md, Memory). Node only: Deno sets its own.
 */
export const WORKER_YOUNG_GENERATION_MB = 3;
/** The same for a node's main thread (the supervisor): a startup flag, so the launcher passes it. */
export const NODE_HEAP_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

function spawnNodeWorker(entry: URL, name: string): WorkerThread {
  const worker = new NodeWorker(entry, { name, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
  let ended = false;
  let lastError: Error | undefined;
  const listeners: ((end: WorkerEnd) => void)[] = [];
  const finish = (end: WorkerEnd) => {
    if (ended) return;
    ended = true;
    for (const l of listeners) l(end);
  };
  // An `error` listener must always be attached: without one an actor's uncaught error would
  // take the whole node down.
  worker.on("error", (err) => {
    lastError = err instanceof Error ? err : new Error(String(err));
  });
  worker.on("exit", (code) => finish({ code, error: lastError }));
  return {
    endpoint: nodeEndpoint(worker as unknown as Parameters<typeof nodeEndpoint>[0]),
    onEnd: (l) => listeners.push(l),
    terminate: async () => {
      await worker.terminate();
    },
  };
}

interface WebWorkerLike {
  postMessage(m: unknown): void;
  addEventListener(t: string, l: (e: Event) => void): void;
  removeEventListener(t: string, l: (e: Event) => void): void;
  terminate(): void;
}

function spawnWebWorker(entry: URL, name: string): WorkerThread {
  const Ctor = (globalThis as unknown as { Worker: new (u: string, o: object) => WebWorkerLike }).Worker;
  const worker = new Ctor(entry.href, { type: "module", name });
  let ended = false;
  const listeners: ((end: WorkerEnd) => void)[] = [];
  const finish = (end: WorkerEnd) => {
    if (ended) return;
    ended = true;
    worker.terminate();
    for (const l of listeners) l(end);
  };
  worker.addEventListener("error", (ev: Event) => {
    // Without preventDefault Deno rethrows the worker's error in the main thread.
    ev.preventDefault();
    const e = ev as Event & { error?: unknown; message?: string };
    finish({ error: e.error instanceof Error ? e.error : new Error(e.message ?? "worker error") });
  });
  return {
    endpoint: worker as unknown as Endpoint,
    onEnd: (l) => listeners.push(l),
    terminate: async () => finish({ code: 0 }),
  };
}

/** Inside a worker: the endpoint to the supervisor. */
export function parentEndpoint(): Endpoint {
  if (parentPort) return nodeEndpoint(parentPort as unknown as Parameters<typeof nodeEndpoint>[0]);
  return globalThis as unknown as Endpoint;
}

/** Monotonic milliseconds, for every duration and liveness judgement (never wall clocks). */
export const monotonicNow = (): number => performance.now();

/**
 * The command that runs another of Herald's scripts (a compiled ES module) in a child process,
 * on the runtime this process runs on. `execArgv`: this process's runtime flags to pass on.
 */
export function scriptCommand(script: string, args: readonly string[], execArgv: readonly string[] = process.execArgv): [string, string[]] {
  return isDeno ? [process.execPath, ["run", "-A", script, ...args]] : [process.execPath, [...execArgv, script, ...args]];
}
