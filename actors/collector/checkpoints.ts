/**
 * Collector checkpoints, fenced by the master epoch (DESIGN.md §4). One KV key per collector,
 * `checkpoint.<name>` in the collectors bucket, holding `{ cursor, epoch, node, updatedAt }`.
 *
 * - Every write is a compare-and-set on the revision this writer last read or wrote, so a writer
 *   that did not see the latest value cannot overwrite it; a failed CAS means someone else moved
 *   the checkpoint: the writer stops the collection and reads it again next time.
 * - Before collecting, a writer reads the checkpoint. If it carries a higher epoch, a newer master
 *   owns it: the writer is fenced and stops collecting for good. If it carries a lower epoch, the
 *   writer first claims it — rewrites the same cursor with its own epoch (CAS) — so from then on
 *   every write of the older master fails its CAS, and on re-reading it finds itself fenced.
 * - The cursor is advanced only after the batch it covers is acknowledged by the queue, so a new
 *   master resumes from a point before which everything is durable; what it collects again is
 *   dropped by the queue's deduplication (derived ids, ids.ts).
 *
 * A stale ex-master (a paused process that wakes up) can therefore at worst publish a batch the
 * queue already holds; it can never move a checkpoint its successor has touched.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { HeraldError } from "../../runtime/errors.js";
import { checkpointKey } from "../../runtime/names.js";

/**
 * Totals of what the checkpoint covers. Written with the cursor in one compare-and-set, so they are
 * exact across failovers: a batch counts once it is checkpointed, whoever collected it.
 */
export interface CheckpointTotals {
  /** Items read and made durable: newly queued, already in the queue, or dead-lettered. */
  collected: number;
  /** Of those, publishes the queue recognised as already queued. */
  duplicates: number;
  /** Of those, items that became dead letters. */
  deadLettered: number;
}

/** What a writer resumes from. */
export interface Resume {
  cursor: unknown;
  totals: CheckpointTotals;
}

/** The stored value (JSON). */
export interface Checkpoint extends CheckpointTotals {
  /** The source's cursor after the last queued item; null: nothing collected yet (start from the beginning). */
  cursor: unknown;
  /** Master epoch of the writer: the fencing token. */
  epoch: number;
  /** Node of the writer (informational). */
  node: string;
  /** ISO time of the write, on the writer's clock (informational). */
  updatedAt: string;
}

/** Key of a collector's checkpoint in the collectors bucket. */

/** A newer master's epoch holds the checkpoint: this writer must stop collecting. */
export class FencedError extends HeraldError {
  constructor(
    readonly collector: string,
    readonly mine: number,
    readonly stored: number,
  ) {
    super("FENCED", `checkpoint of collector "${collector}" is held by master epoch ${stored}, newer than this writer's ${mine}: stopped collecting`, {
      userError: false,
    });
    this.name = "FencedError";
  }
}

/** The checkpoint moved under this writer (compare-and-set failed): read it again before going on. */
export class CheckpointConflictError extends HeraldError {
  constructor(message: string, options: ErrorOptions = {}) {
    super("CHECKPOINT_CONFLICT", message, { ...options, userError: false });
    this.name = "CheckpointConflictError";
  }
}

/** The stored value is not a checkpoint: refuse rather than guess where to resume. */
export class CheckpointUnreadableError extends HeraldError {
  constructor(message: string) {
    super("CHECKPOINT_UNREADABLE", message, { userError: false });
    this.name = "CheckpointUnreadableError";
  }
}

/**
 * What a writer of epoch `mine` does with the checkpoint it read. Pure.
 * `create`: none exists; `claim`: an older epoch's, rewrite it with ours; `use`: ours already;
 * `fenced`: a newer epoch's.
 */
export function decideClaim(stored: Pick<Checkpoint, "epoch"> | undefined, mine: number): "create" | "claim" | "use" | "fenced" {
  if (!stored) return "create";
  if (stored.epoch > mine) return "fenced";
  return stored.epoch < mine ? "claim" : "use";
}

export interface CheckpointStoreOptions {
  kv: KV;
  /** Collector name. */
  collector: string;
  /** This writer's master epoch. */
  epoch: number;
  node: string;
  /** Wall clock for `updatedAt`. @defaultValue Date.now */
  now?: () => number;
}

export class CheckpointStore {
  private readonly key: string;
  /** Revision of the checkpoint as this writer last read or wrote it; 0: none. */
  private revision = 0;

  constructor(private readonly opts: CheckpointStoreOptions) {
    this.key = checkpointKey(opts.collector);
  }

  get epoch(): number {
    return this.opts.epoch;
  }

  /**
   * Reads the checkpoint and makes sure this writer owns it (see the module comment); returns the
   * cursor to collect after and the totals so far. `initial` gives the cursor of a collector that
   * has none yet.
   * @throws FencedError when a newer epoch holds it; CheckpointConflictError when another writer
   *   changed it between our read and our claim; CheckpointUnreadableError when it is not a checkpoint.
   */
  async acquire(initial: () => Promise<unknown>): Promise<Resume> {
    const entry = await this.opts.kv.get(this.key);
    const stored = entry && entry.operation === "PUT" ? parseCheckpoint(entry, this.opts.collector) : undefined;
    switch (decideClaim(stored, this.opts.epoch)) {
      case "fenced":
        throw new FencedError(this.opts.collector, this.opts.epoch, stored!.epoch);
      case "use":
        this.revision = entry!.revision;
        return resumeOf(stored!);
      case "claim": {
        const resume = resumeOf(stored!);
        await this.write(() => this.opts.kv.update(this.key, this.value(resume), entry!.revision));
        return resume;
      }
      case "create": {
        const resume: Resume = { cursor: (await initial()) ?? null, totals: { collected: 0, duplicates: 0, deadLettered: 0 } };
        // create() also succeeds over a deleted key; exactly one of racing creators wins.
        await this.write(() => this.opts.kv.create(this.key, this.value(resume)));
        return resume;
      }
    }
  }

  /**
   * Moves the checkpoint to `resume.cursor` with the new totals: call only once everything before
   * it is durable in the queue.
   * @throws CheckpointConflictError when someone else moved it since this writer's last read or write.
   */
  async advance(resume: Resume): Promise<void> {
    if (this.revision === 0) throw new CheckpointConflictError(`checkpoint of "${this.opts.collector}" not acquired`);
    const revision = this.revision;
    await this.write(() => this.opts.kv.update(this.key, this.value(resume), revision));
  }

  private async write(put: () => Promise<number>): Promise<void> {
    try {
      this.revision = await put();
    } catch (err) {
      // Whatever happened (a lost answer may even have been a success), the next acquire re-reads.
      this.revision = 0;
      if (isCasFailure(err)) {
        throw new CheckpointConflictError(`checkpoint of "${this.opts.collector}" was moved by another writer`, { cause: err });
      }
      throw err;
    }
  }

  private value(r: Resume): string {
    const at = new Date((this.opts.now ?? Date.now)()).toISOString();
    const v: Checkpoint = { cursor: r.cursor, ...r.totals, epoch: this.opts.epoch, node: this.opts.node, updatedAt: at };
    return JSON.stringify(v);
  }
}

function resumeOf(c: Checkpoint): Resume {
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return { cursor: c.cursor ?? null, totals: { collected: n(c.collected), duplicates: n(c.duplicates), deadLettered: n(c.deadLettered) } };
}

/** The stored checkpoint, or a CheckpointUnreadableError. */
export function parseCheckpoint(entry: KvEntry, collector: string): Checkpoint {
  let v: Partial<Checkpoint> | undefined;
  try {
    v = entry.json<Partial<Checkpoint>>();
  } catch {
    v = undefined;
  }
  if (typeof v !== "object" || v === null || typeof v.epoch !== "number" || !("cursor" in v)) {
    throw new CheckpointUnreadableError(
      `checkpoint.${collector} is not a checkpoint { cursor, epoch }: delete the key to collect again from startAt`,
    );
  }
  return v as Checkpoint;
}

function isCasFailure(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
