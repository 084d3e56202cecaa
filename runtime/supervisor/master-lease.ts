/**
 * The master duty as a lease: one KV key holding `{ node, epoch }`.
 *
 * - The preset master creates the key (KV `create`: exactly one creator wins).
 * - The holder renews it every interval by compare-and-set on the key's revision; a renewal that
 *   fails (someone else took the lease, or NATS did not answer in time) stops master work at once.
 * - The holder also fences itself, on a timer of its own armed at every take and renewal: if it
 *   has not renewed for `timeoutMs − intervalMs` less a margin, measured from before the write
 *   (say it lost NATS), it steps down before anyone else may take over. The timer fires whatever
 *   the protocol loop is doing, even while a step awaits a stuck request; a renewal that completes
 *   after it fired does not make the node master again. The lease's KV requests time out well
 *   inside that window (`leaseRequestTimeoutMs`) so the loop itself is never stuck for long either.
 * - Others judge the lease expired when its revision has not moved for `timeoutMs` on their own
 *   monotonic clock. Candidates go in config order: the first live candidate tries at once, the
 *   k-th after k more intervals; compare-and-set with epoch + 1 lets exactly one win.
 * - Releasing (on stop) writes `{ node: null }` with the epoch kept, so epochs only grow.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { MASTER_KEY } from "../names.js";

export interface LeaseValue {
  /** Holder, or null when released. */
  node: string | null;
  /** Grows by one at every change of holder; the fencing token for master work. */
  epoch: number;
  /** Holder's incarnation id: a restarted holder is a different holder. */
  incarnation: string;
}

/** Part of the self-fencing window kept back for a timer that fires late on a busy event loop. */
const FENCE_MARGIN = 0.1;

/**
 * How long after the start of its last successful write the holder may act as master:
 * `timeoutMs − intervalMs` (others wait `timeoutMs` from when *they* saw that write) less
 * a 10 % margin.
 */
export function selfFenceAfterMs(intervalMs: number, timeoutMs: number): number {
  return (timeoutMs - intervalMs) * (1 - FENCE_MARGIN);
}

/**
 * Request timeout for the KV handle the lease uses: `min(intervalMs, (timeoutMs − intervalMs) / 2)`,
 * at least 250 ms (below that a loaded host would time out healthy requests). A request stuck on a
 * node cut off from NATS then fails within a step or two, not after the client's 5 s default, and
 * the loop goes on reading the lease (to take it back, or to see who took it over).
 */
export function leaseRequestTimeoutMs(intervalMs: number, timeoutMs: number): number {
  return Math.max(250, Math.min(intervalMs, (timeoutMs - intervalMs) / 2));
}

export interface MasterLeaseOptions {
  /** The registry bucket, opened with a request timeout of `leaseRequestTimeoutMs`. */
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
  /** Monotonic clock, ms. */
  now: () => number;
  /** Arms the self-fencing timer. @defaultValue setTimeout */
  setTimer?: (fire: () => void, ms: number) => unknown;
  /** Disarms what `setTimer` returned. @defaultValue clearTimeout */
  clearTimer?: (handle: unknown) => void;
  log: Logger;
  onGain: (epoch: number) => void;
  onLose: (epoch: number, reason: string) => void;
}

/** The lease as this node holds it; a new object at every take, so a stale one is recognised. */
interface Hold {
  epoch: number;
  revision: number;
  /** Monotonic time just before the last successful write. */
  renewedAt: number;
  fence: unknown;
}

export class MasterLease {
  private held: Hold | undefined;
  private seenRevision = -1;
  private seenChangedAt = 0;
  private current: LeaseValue | undefined;
  private absentSince: number | undefined;
  private busy = false;
  /**
   * A take whose write failed without a verdict (a timeout): the server may have applied it. If the
   * next read shows our value at that epoch, the lease is ours, as held since the attempt began.
   */
  private unsettledTake: { epoch: number; startedAt: number } | undefined;

  private readonly fenceAfterMs: number;
  private readonly setTimer: (fire: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly opts: MasterLeaseOptions) {
    this.fenceAfterMs = selfFenceAfterMs(opts.intervalMs, opts.timeoutMs);
    this.setTimer = opts.setTimer ?? ((fire, ms) => setTimeout(fire, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

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
    const unsettled = this.unsettledTake;
    this.unsettledTake = undefined;
    if (unsettled && entry && value?.node === this.opts.node && value.incarnation === this.opts.incarnation && value.epoch === unsettled.epoch) {
      // Ours after all; safe only while inside the self-fence window counted from the attempt.
      if (seenAt - unsettled.startedAt < this.fenceAfterMs) return this.gain(value, entry.revision, unsettled.startedAt);
    }
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
    let revision: number;
    try {
      revision = await this.opts.kv.update(MASTER_KEY, JSON.stringify(value), entry.revision);
    } catch (err) {
      // A compare-and-set refused means someone else wrote the lease: lost, at once. Anything else
      // (a timeout, a broken connection) says nothing about who holds it: keep trying on the next
      // step; the self-fence timer steps us down in time if no renewal gets through.
      if (this.held === held && isCasConflict(err)) this.lose(`renewal failed: ${errorText(err)}`);
      else this.opts.log.debug("lease renewal did not complete; trying again", { error: errorText(err) });
      return;
    }
    // The fence fired while the write was in flight: we have stepped down and stay down; the
    // value we wrote expires like anyone's.
    if (this.held !== held) return;
    held.revision = revision;
    // Measured from before the write: never later than what observers saw.
    held.renewedAt = startedAt;
    this.seenRevision = revision;
    this.seenChangedAt = startedAt;
    this.armFence(held);
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
      // A compare-and-set refused: another candidate won. Anything else may have been applied.
      if (!isCasConflict(err)) this.unsettledTake = { epoch, startedAt };
      this.opts.log.debug("lease take lost", { epoch, error: errorText(err) });
      return;
    }
    this.gain(value, revision, startedAt);
  }

  /** We hold `value` at `revision`, written no earlier than `writtenFrom` (monotonic). */
  private gain(value: LeaseValue, revision: number, writtenFrom: number): void {
    const held: Hold = { epoch: value.epoch, revision, renewedAt: writtenFrom, fence: undefined };
    this.held = held;
    this.armFence(held);
    this.current = value;
    this.absentSince = undefined;
    this.seenRevision = revision;
    this.seenChangedAt = writtenFrom;
    this.opts.log.info("master duty acquired", { epoch: value.epoch });
    this.opts.onGain(value.epoch);
  }

  /** (Re)arms the self-fencing timer for `held`'s latest renewal. */
  private armFence(held: Hold): void {
    if (held.fence !== undefined) this.clearTimer(held.fence);
    const renewedAt = held.renewedAt;
    const ms = Math.max(0, renewedAt + this.fenceAfterMs - this.opts.now());
    held.fence = this.setTimer(() => {
      // A timer that was cleared may still fire (an injected one, say): only the latest counts.
      if (this.held !== held || held.renewedAt !== renewedAt) return;
      held.fence = undefined;
      this.lose(`lease not renewed for ${Math.round(this.opts.now() - renewedAt)} ms`);
    }, ms);
  }

  private lose(reason: string): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    if (held.fence !== undefined) this.clearTimer(held.fence);
    this.opts.log.warn("master duty lost", { epoch: held.epoch, reason });
    this.opts.onLose(held.epoch, reason);
  }
}

/** The server refused a KV update because the key's revision moved (JetStream "wrong last sequence"). */
function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;
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
