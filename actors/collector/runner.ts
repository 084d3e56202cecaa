/**
 * One collector's life on the master: every intervalMs (the seed's T) it acquires its checkpoint
 * (fencing, checkpoints.ts), then fetches, queues and checkpoints batch after batch until the
 * source has nothing more, and writes its status record. A failing source never ends the loop: the
 * collection is retried with backoff (schedule.ts) and the error shown in status. Only fencing ends
 * it: a newer master owns the checkpoint.
 */
import type { KV } from "@nats-io/kv";
import type { CollectorConfig } from "../../runtime/config/schema.js";
import { errorText } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import type { QueueIO } from "../../runtime/pipeline/queue-io.js";
import { type CollectorStatus } from "../../runtime/supervisor/status.js";
import { CheckpointConflictError, FencedError, type CheckpointStore, type CheckpointTotals } from "./checkpoints.js";
import { enqueueBatch, type EnqueueContext } from "./enqueue.js";
import { sameCursor } from "./page.js";
import { nextDelayMs } from "./schedule.js";
import type { CollectedItem, Source } from "./source.js";
import { collectorStatusKey } from "../../runtime/names.js";

export interface RunnerOptions {
  config: CollectorConfig;
  source: Source;
  checkpoints: CheckpointStore;
  io: QueueIO;
  /** The collectors bucket, for the status record. */
  kv: KV;
  enqueue: EnqueueContext;
  node: string;
  actor: string;
  log: Logger;
}

type Outcome = "ok" | "failed" | "conflict" | "fenced";

/** While one collection pages through a backlog, its status is refreshed this often, in ms. */
const STATUS_EVERY_MS = 1000;

export class CollectorRunner {
  readonly name: string;
  /** This runner's own counts (the actor's counters; its host carries them across restarts). */
  queued = 0;
  duplicates = 0;
  deadLettered = 0;
  /** Collections that failed (the actor's `failed`). */
  failedCollections = 0;
  state: "ok" | "failing" | "fenced" = "ok";
  /** Cluster-wide totals as of the last checkpoint this runner read or wrote (status). */
  private totals: CheckpointTotals = { collected: 0, duplicates: 0, deadLettered: 0 };
  private failures = 0;
  private lastError: { text: string; at: number } | undefined;
  private lastTickAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private newest: { ms?: number; text: string } | undefined;
  private caughtUp = false;
  private nextAttemptAt: number | undefined;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly opts: RunnerOptions) {
    this.name = opts.config.name;
  }

  start(): void {
    this.loopDone = this.loop();
  }

  /** Wall-clock ms of the last collection that succeeded; undefined before the first. */
  get lastSuccess(): number | undefined {
    return this.lastSuccessAt;
  }

  /** Ends the loop after the current batch and closes the source. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.loopDone;
    await this.opts.source.close();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      const outcome = await this.collect();
      if (outcome === "fenced" || this.stopped) break;
      const { intervalMs, backoffMaxMs } = this.opts.config;
      const delay = nextDelayMs({ intervalMs, backoffMaxMs, failures: this.failures, elapsedMs: performance.now() - started });
      this.nextAttemptAt = this.failures > 0 ? Date.now() + delay : undefined;
      await this.writeStatus();
      await this.sleep(delay);
    }
  }

  /** One collection: batches until caught up. Never throws. */
  private async collect(): Promise<Outcome> {
    const { checkpoints, source, config, log } = this.opts;
    this.lastTickAt = Date.now();
    let statusAt = performance.now();
    try {
      const resume = await checkpoints.acquire(() => source.initialCursor());
      let cursor = resume.cursor;
      this.totals = resume.totals;
      this.caughtUp = false;
      while (!this.stopped) {
        const batch = await source.fetch(cursor, config.batchSize);
        const moved = !sameCursor(batch.cursor, cursor);
        let totals = this.totals;
        if (batch.items.length > 0) {
          const r = await enqueueBatch(this.opts.io, batch.items, this.opts.enqueue);
          this.queued += r.queued;
          this.duplicates += r.duplicates;
          this.deadLettered += r.deadLettered;
          this.noteNewest(batch.items);
          if (r.deadLettered > 0) log.warn("collected items that are not valid messages became dead letters", { collector: this.name, count: r.deadLettered });
          totals = {
            collected: totals.collected + batch.items.length,
            duplicates: totals.duplicates + r.duplicates,
            deadLettered: totals.deadLettered + r.deadLettered,
          };
        }
        // Only now is everything up to batch.cursor durable in the queue.
        if (moved) {
          await checkpoints.advance({ cursor: batch.cursor, totals });
          cursor = batch.cursor;
          this.totals = totals;
        }
        if (!batch.more || !moved) {
          this.caughtUp = true;
          break;
        }
        if (performance.now() - statusAt >= STATUS_EVERY_MS) {
          statusAt = performance.now();
          await this.writeStatus();
        }
      }
      this.succeeded();
      return "ok";
    } catch (err) {
      if (err instanceof FencedError) {
        // No status write from here on: the record belongs to the newer master now.
        this.state = "fenced";
        this.lastError = { text: err.message, at: Date.now() };
        log.warn("collector fenced: a newer master owns its checkpoint", { collector: this.name, epoch: err.mine, stored: err.stored });
        return "fenced";
      }
      if (err instanceof CheckpointConflictError) {
        // Not the source's fault: someone moved the checkpoint; the next collection re-reads it.
        log.info("checkpoint moved by another writer: reading it again", { collector: this.name });
        return "conflict";
      }
      this.failed(err);
      return "failed";
    }
  }

  private succeeded(): void {
    if (this.failures > 0) this.opts.log.info("collection recovered", { collector: this.name, afterFailures: this.failures });
    this.failures = 0;
    this.state = "ok";
    this.lastSuccessAt = Date.now();
  }

  private failed(err: unknown): void {
    const text = `collector "${this.name}" (${this.opts.config.kind}): ${errorText(err)}`;
    this.failures++;
    this.failedCollections++;
    this.state = "failing";
    this.caughtUp = false;
    // The first failure and every change of error are errors in the log; repeats are debug lines.
    const log = this.failures === 1 || this.lastError?.text !== text ? this.opts.log.error : this.opts.log.debug;
    log("collection failed; retrying with backoff", { collector: this.name, failures: this.failures, error: text });
    this.lastError = { text, at: Date.now() };
  }

  private noteNewest(items: CollectedItem[]): void {
    for (const item of items) {
      if (item.timeText === undefined) continue;
      if (item.timeMs !== undefined && this.newest?.ms !== undefined && item.timeMs < this.newest.ms) continue;
      this.newest = { text: item.timeText, ...(item.timeMs === undefined ? {} : { ms: item.timeMs }) };
    }
  }

  private record(): CollectorStatus {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      name: this.name,
      kind: this.opts.config.kind,
      state: this.state,
      node: this.opts.node,
      actor: this.opts.actor,
      epoch: this.opts.checkpoints.epoch,
      lastTickAt: iso(this.lastTickAt),
      lastSuccessAt: iso(this.lastSuccessAt),
      ...this.totals,
      newestUpdatedAt: this.newest?.text ?? null,
      // Source clock against this host's clock: skew between them shows up here, and nowhere else.
      lagMs: this.newest?.ms === undefined ? null : Math.max(0, Math.round(Date.now() - this.newest.ms)),
      caughtUp: this.caughtUp,
      consecutiveFailures: this.failures,
      lastError: this.lastError?.text ?? null,
      lastErrorAt: iso(this.lastError?.at),
      nextAttemptAt: iso(this.nextAttemptAt),
    };
  }

  private async writeStatus(): Promise<void> {
    try {
      await this.opts.kv.put(collectorStatusKey(this.name), JSON.stringify(this.record()));
    } catch (err) {
      this.opts.log.debug("collector status write failed", { collector: this.name, error: errorText(err) });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}
