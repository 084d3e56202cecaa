/**
 * The master duty as a lease: one KV key holding `{ node, epoch }`.
 *
 * - The preset master creates the key (KV `create`: exactly one creator wins).
 * - The holder renews it every interval by compare-and-set on the key's revision; a renewal that
 *   fails means someone else took the lease, so the holder stops master work at once.
 * - The holder also fences itself: if it has not renewed for `timeoutMs − intervalMs` (say it
 *   lost NATS), it steps down before anyone else may take over.
 * - Others judge the lease expired when its revision has not moved for `timeoutMs` on their own
 *   monotonic clock. Candidates go in config order: the first live candidate tries at once, the
 *   k-th after k more intervals; compare-and-set with epoch + 1 lets exactly one win.
 * - Releasing (on stop) writes `{ node: null }` with the epoch kept, so epochs only grow.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { MASTER_KEY } from "../subjects.js";

export interface LeaseValue {
  /** Holder, or null when released. */
  node: string | null;
  /** Grows by one at every change of holder; the fencing token for master work. */
  epoch: number;
  /** Holder's incarnation id: a restarted holder is a different holder. */
  incarnation: string;
}

export interface MasterLeaseOptions {
  kv: KV;
  node: string;
  incarnation: string;
  /** This node is the config's preset master. */
  preset: boolean;
  /** Node names in config order: the order in which slaves take over. */
  order: string[];
  intervalMs: number;
  timeoutMs: number;
  /** Liveness of another node, as this node judges it. */
  isAlive: (node: string) => boolean;
  now: () => number;
  log: Logger;
  onGain: (epoch: number) => void;
  onLose: (epoch: number, reason: string) => void;
}

export class MasterLease {
  private held: { epoch: number; revision: number; renewedAt: number } | undefined;
  private seenRevision = -1;
  private seenChangedAt = 0;
  private current: LeaseValue | undefined;
  private absentSince: number | undefined;
  private busy = false;

  constructor(private readonly opts: MasterLeaseOptions) {}

  isMaster(): boolean {
    return this.held !== undefined;
  }

  epoch(): number | undefined {
    return this.held?.epoch;
  }

  /** The lease as last read: who holds it (null if released) and its epoch. */
  holder(): { node: string | null; epoch: number } | undefined {
    if (this.held) return { node: this.opts.node, epoch: this.held.epoch };
    return this.current ? { node: this.current.node, epoch: this.current.epoch } : undefined;
  }

  /** One step of the protocol; the supervisor calls it every heartbeat interval. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.step();
    } finally {
      this.busy = false;
    }
  }

  /** Gives the lease up (node stopping): keeps the epoch so it only ever grows. */
  async release(): Promise<void> {
    const held = this.held;
    if (!held) return;
    this.lose("released");
    const value: LeaseValue = { node: null, epoch: held.epoch, incarnation: "" };
    try {
      await this.opts.kv.update(MASTER_KEY, JSON.stringify(value), held.revision);
    } catch (err) {
      // Someone already took it over: nothing to release.
      this.opts.log.debug("lease release skipped", { error: errorText(err) });
    }
  }

  private async step(): Promise<void> {
    const now = this.opts.now();
    if (this.held && now - this.held.renewedAt > this.opts.timeoutMs - this.opts.intervalMs) {
      this.lose(`lease not renewed for ${Math.round(now - this.held.renewedAt)} ms`);
    }
    let entry: KvEntry | null;
    try {
      entry = await this.opts.kv.get(MASTER_KEY);
    } catch (err) {
      this.opts.log.debug("lease read failed", { error: errorText(err) });
      return;
    }
    const seenAt = this.opts.now();
    if (entry && entry.revision !== this.seenRevision) {
      this.seenRevision = entry.revision;
      this.seenChangedAt = seenAt;
    }
    const value = entry && entry.operation === "PUT" ? parseLease(entry) : undefined;
    this.current = value;
    if (this.held) return this.renew(entry, value);
    if (!value) return this.whenAbsent(entry, seenAt);
    if (value.node === this.opts.node && value.incarnation !== this.opts.incarnation) {
      // Our own previous incarnation held it: nobody else is acting on it, take it back.
      return this.take(entry, value.epoch + 1);
    }
    // Our own value after we fenced ourselves: it expires like anyone's, then we may retake it.
    const staleFor = seenAt - this.seenChangedAt;
    const wait = value.node === null ? 0 : this.opts.timeoutMs;
    if (staleFor >= wait + this.rank(value.node) * this.opts.intervalMs) {
      await this.take(entry, value.epoch + 1);
    }
  }

  private async renew(entry: KvEntry | null, value: LeaseValue | undefined): Promise<void> {
    const held = this.held!;
    if (!entry || !value || value.node !== this.opts.node || value.incarnation !== this.opts.incarnation || value.epoch !== held.epoch) {
      return this.lose(`lease now held by ${value?.node ?? "nobody"} (epoch ${value?.epoch ?? "?"})`);
    }
    const startedAt = this.opts.now();
    try {
      held.revision = await this.opts.kv.update(MASTER_KEY, JSON.stringify(value), entry.revision);
      // Measured from before the write: never later than what observers saw.
      held.renewedAt = startedAt;
      this.seenRevision = held.revision;
      this.seenChangedAt = startedAt;
    } catch (err) {
      this.lose(`renewal failed: ${errorText(err)}`);
    }
  }

  private async whenAbsent(entry: KvEntry | null, now: number): Promise<void> {
    if (this.absentSince === undefined) this.absentSince = now;
    const waited = now - this.absentSince;
    const wait = this.opts.preset ? 0 : this.opts.timeoutMs + this.rank(null) * this.opts.intervalMs;
    if (waited >= wait) await this.take(entry, 1);
  }

  /** Position of this node among the live candidates (0 = first in config order). */
  private rank(holder: string | null): number {
    const candidates = this.opts.order.filter(
      (n) => n !== holder && (n === this.opts.node || this.opts.isAlive(n)),
    );
    const i = candidates.indexOf(this.opts.node);
    return i < 0 ? candidates.length : i;
  }

  private async take(entry: KvEntry | null, epoch: number): Promise<void> {
    const value: LeaseValue = { node: this.opts.node, epoch, incarnation: this.opts.incarnation };
    const startedAt = this.opts.now();
    let revision: number;
    try {
      revision =
        !entry || entry.operation !== "PUT"
          ? await this.opts.kv.create(MASTER_KEY, JSON.stringify(value))
          : await this.opts.kv.update(MASTER_KEY, JSON.stringify(value), entry.revision);
    } catch (err) {
      // Another candidate won the compare-and-set.
      this.opts.log.debug("lease take lost", { epoch, error: errorText(err) });
      return;
    }
    this.held = { epoch, revision, renewedAt: startedAt };
    this.current = value;
    this.absentSince = undefined;
    this.seenRevision = revision;
    this.seenChangedAt = startedAt;
    this.opts.log.info("master duty acquired", { epoch });
    this.opts.onGain(epoch);
  }

  private lose(reason: string): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    this.opts.log.warn("master duty lost", { epoch: held.epoch, reason });
    this.opts.onLose(held.epoch, reason);
  }
}

function parseLease(entry: KvEntry): LeaseValue | undefined {
  try {
    const v = entry.json<LeaseValue>();
    if (typeof v?.epoch !== "number") return undefined;
    return v;
  } catch {
    return undefined;
  }
}
