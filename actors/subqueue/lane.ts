/**
 * One lane per topic: what a sub-queue actor holds of that topic (its sub-queue scheduler and the
 * exception entries due for retry), what it has in flight, and the rule in force (base rule with
 * calendar and load overrides applied). Each lane has its own consumers and its own budget, so a
 * paused, slow or backlogged topic fills only its own lane.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { Clock } from "../../runtime/clock.js";
import type { ExceptionEntry } from "../../runtime/pipeline/streams.js";
import type { Envelope } from "../../runtime/pipeline/types.js";
import { effectiveRules, RateMeter } from "../../runtime/rules/select.js";
import { seededRandom } from "../../runtime/rules/random.js";
import type { EffectiveRules } from "../../runtime/rules/types.js";
import type { RulesView } from "./rules-view.js";
import { SubQueueScheduler } from "./scheduler.js";

/** A stored message this actor holds un-acked: a queued message, or an exception entry due for retry. */
export interface Held {
  m: JsMsg;
  env: Envelope;
  /** Set for a retry: the exception entry `m` carries. */
  entry?: ExceptionEntry;
}

/** Calendar and load overrides are re-evaluated at most this often, ms. */
const RULES_REFRESH_MS = 100;

/** Most messages in one batch to a processor and on to a pusher. */
export const BATCH_MAX = 64;

/**
 * A topic's batch size: at most half its in-flight budget, so at least two batches are under way
 * at once and one renders while the other is pushed (with the whole budget in one batch, each
 * batch waited for the one before to be settled).
 */
export function batchSize(concurrency: number): number {
  return Math.max(1, Math.min(BATCH_MAX, Math.ceil(concurrency / 2)));
}

export class TopicLane {
  readonly scheduler: SubQueueScheduler<Held>;
  /** Exception entries due now, oldest first: dispatched before new messages of the topic. */
  private readonly retries: Held[] = [];
  /** Dispatched and not yet settled. */
  inFlight = 0;
  /** Messages per batch (see {@link batchSize}). */
  readonly batchSize: number;
  private readonly meter = new RateMeter({ maxWindowMs: 3_600_000 });
  private cached: { rules: EffectiveRules; at: number; version: number } | undefined;
  private rng: () => number = Math.random;
  private seed: number | undefined;
  private roomWaiters: (() => void)[] = [];

  constructor(
    readonly topic: string,
    private readonly view: RulesView,
    private readonly clock: Clock,
    /** Pushes of this topic in flight at most (`topics.<name>.concurrency`, else `pipeline.maxInFlight`). */
    readonly concurrency: number,
  ) {
    this.batchSize = batchSize(concurrency);
    // Sub-queue windows run on this node's monotonic clock from when it received each message:
    // no other host's clock (not even the server's stored timestamps) enters the decision.
    this.scheduler = new SubQueueScheduler<Held>({
      rules: () => this.rules(),
      now: clock.monotonic,
      random: () => this.rng(),
    });
  }

  get paused(): boolean {
    return this.view.paused(this.topic);
  }

  /** Received and not yet dispatched: what the lane's budget (`pipeline.maxHeld`) counts. */
  get held(): number {
    return this.scheduler.size + this.retries.length;
  }

  get retriesWaiting(): number {
    return this.retries.length;
  }

  /** A newly received queued message enters the open sub-queue. */
  add(h: Held): void {
    const now = this.clock.monotonic();
    this.meter.record(now);
    this.scheduler.add(h, now);
  }

  /** An exception entry that is due. */
  addRetry(h: Held): void {
    this.retries.push(h);
  }

  /** The next message to dispatch: due retries first, then what the sub-queue rules release. */
  next(): Held | undefined {
    const h = this.retries.shift() ?? this.scheduler.next();
    if (h !== undefined) this.notifyRoom();
    return h;
  }

  /** Takes every held, undispatched message out of the lane (the actor is draining). */
  takeAll(): Held[] {
    const all = this.retries.splice(0);
    for (let h = this.scheduler.next(); h; h = this.scheduler.next()) all.push(h);
    this.notifyRoom();
    return all;
  }

  forEach(visit: (h: Held) => void): void {
    for (const h of this.retries) visit(h);
    this.scheduler.forEach(visit);
  }

  /** Resolves when the lane may have room again (something left it, or the actor wakes every lane). */
  waitForRoom(): Promise<void> {
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  notifyRoom(): void {
    if (this.roomWaiters.length === 0) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }

  rules(): EffectiveRules {
    const now = this.clock.monotonic();
    const c = this.cached;
    if (c && c.version === this.view.version && now - c.at < RULES_REFRESH_MS) return c.rules;
    const base = this.view.rulesFor(this.topic);
    if (base.seed !== this.seed) {
      // A seeded rule makes the random schemes reproducible.
      this.seed = base.seed;
      this.rng = base.seed === undefined ? Math.random : seededRandom(base.seed);
    }
    // Calendar entries are wall-clock matters (days, hours in a time zone); the load meter counts
    // on the monotonic clock.
    const rules = effectiveRules(base, this.clock.wall(), (w) => this.meter.perSec(w, now));
    this.cached = { rules, at: now, version: this.view.version };
    return rules;
  }
}
