/**
 * The sub-queue scheduler of seed US9065778, as a pure module: messages, in the order received,
 * are cut into consecutive sub-queues by a count and/or an age limit; closed sub-queues are
 * visited in the secondary scheme's order and each is drained completely in the primary scheme's
 * order. No timers, clock or randomness of its own: the actor injects them, and tests drive them.
 */
import { randomIndex } from "../../runtime/rules/random.js";
import type { EffectiveRules, Scheme } from "../../runtime/rules/types.js";

/** What {@link SubQueueScheduler} needs from the outside world. */
export interface SubQueueSchedulerOptions {
  /**
   * The rule in force now. Read at every decision (each `add`, each `next`, `nextDeadlineMs`), so
   * keep it cheap: the actor caches `effectiveRules(...)` and refreshes it on a timer or a KV change.
   */
  rules: () => EffectiveRules;
  /** Current time in ms, on the same clock as the `receivedAtMs` passed to `add`. */
  now: () => number;
  /** Uniform numbers in [0, 1) for the `random` scheme; e.g. `seededRandom(rules.seed)`. */
  random: () => number;
}

/** A snapshot of what the scheduler holds. */
export interface SubQueueStats {
  /** Items held in total: draining + closed + open. */
  held: number;
  /** Items left in the sub-queue being drained. */
  draining: number;
  /** Closed sub-queues waiting to be chosen. */
  closedSubQueues: number;
  /** Items in the open (still filling) sub-queue. */
  open: number;
  /** The open sub-queue is being drained as its items arrive. */
  streaming: boolean;
}

interface SubQueue<T> {
  /** Items not yet handed out (all of them, unless the sub-queue streams). */
  items: T[];
  /** Items it has received in all: what `maxCount` counts. */
  count: number;
  firstReceivedAtMs: number;
}

/**
 * Orders messages by sub-queues.
 *
 * How rule changes apply (rules are read at each decision):
 * - `maxCount` / `maxAgeMs`: the open sub-queue is judged by the limits in force at each check
 *   (its deadline is its first received time + the current `maxAgeMs`; it closes once it holds
 *   ≥ the current `maxCount`). So switching to a shorter window takes effect at once instead of
 *   waiting out the old one. Closed sub-queues are never re-cut.
 * - `secondary`: read each time the next sub-queue is chosen.
 * - `primary`: fixed when a sub-queue starts draining, so one sub-queue is drained in one order;
 *   the next sub-queue uses the primary in force when it starts.
 *
 * Streaming: a sub-queue need not close before its items go out when their order is already
 * decided — when nothing is being drained, no closed sub-queue waits (so by any secondary scheme
 * the open one is next), and the primary is fifo (the order inside is the order of arrival). Then
 * the open sub-queue starts draining at once and hands out each item as it arrives; it still closes
 * by count or age as always, after which new items form the next sub-queue. Under fifo/fifo every
 * message goes out on arrival. A sub-queue with a lifo or random primary, or one with closed
 * sub-queues ahead of it, waits to close as before, so the worked example holds exactly.
 */
export class SubQueueScheduler<T> {
  private readonly rules: () => EffectiveRules;
  private readonly now: () => number;
  private readonly random: () => number;

  private open: SubQueue<T> | undefined;
  /** Oldest first. Small: bounded by the messages the actor holds un-acked (max_ack_pending). */
  private readonly closed: SubQueue<T>[] = [];
  /** The sub-queue being drained, arranged so that `pop()` gives the next item (unless random). */
  private draining: T[] = [];
  private drainingRandom = false;
  /** The open sub-queue is the one being drained: its items go out as they arrive (fifo). */
  private streaming = false;
  private held = 0;

  constructor(options: SubQueueSchedulerOptions) {
    this.rules = options.rules;
    this.now = options.now;
    this.random = options.random;
  }

  /**
   * Appends an item to the open sub-queue, opening one if needed. Sub-queues are cut by received
   * time, not by the clock, so messages received while retrieval is paused (or redelivered with
   * their original times) still group as they were received: an item received at or after the
   * open sub-queue's deadline closes it and starts a new one.
   * @param receivedAtMs when the message was received, ms, on the `now()` clock.
   */
  add(item: T, receivedAtMs: number): void {
    if (!Number.isFinite(receivedAtMs)) {
      throw new RangeError(`receivedAtMs: must be a finite number of ms, got ${receivedAtMs}`);
    }
    const rules = this.rules();
    this.closeOpenIfDue(rules, receivedAtMs);
    if (!this.open) this.open = { items: [], count: 0, firstReceivedAtMs: receivedAtMs };
    this.open.items.push(item);
    this.open.count++;
    this.held++;
    this.closeOpenIfDue(rules, receivedAtMs);
  }

  /**
   * The next item to dispatch, or undefined when none is ready (nothing held, or only an open
   * sub-queue that has not reached its count or deadline). Finishes the sub-queue being drained
   * before choosing another; the open sub-queue is closed first if `now()` is past its deadline.
   */
  next(): T | undefined {
    if (this.draining.length === 0) {
      const rules = this.rules();
      this.closeOpenIfDue(rules, this.now());
      if (this.draining.length === 0) {
        if (!this.streaming) {
          const chosen = this.takeClosed(rules.secondary);
          if (chosen) this.startDraining(chosen.items, rules.primary);
          // Nothing else is ahead of the open sub-queue: with a fifo primary its order is known.
          else if (this.open && rules.primary === "fifo") this.streaming = true;
        }
        if (this.draining.length === 0) return this.streamed();
      }
    }
    const item = this.drainingRandom ? this.takeRandomItem() : this.draining.pop()!;
    this.held--;
    return item;
  }

  /** The next item of the streaming open sub-queue, in the order received. */
  private streamed(): T | undefined {
    if (!this.streaming || !this.open || this.open.items.length === 0) return undefined;
    this.held--;
    return this.open.items.shift();
  }

  /**
   * When the open sub-queue closes by age, in ms on the `now()` clock, so the actor can set one
   * timer instead of polling; undefined when no sub-queue is open. May be in the past.
   */
  nextDeadlineMs(): number | undefined {
    // A streaming sub-queue with nothing left to hand out has no reason to wake anyone: it closes
    // when the next item arrives past its deadline.
    if (!this.open || (this.streaming && this.open.items.length === 0)) return undefined;
    return this.open.firstReceivedAtMs + this.rules().maxAgeMs;
  }

  /** Visits every held item (draining, closed, open), in no particular order. */
  forEach(visit: (item: T) => void): void {
    for (const item of this.draining) visit(item);
    for (const q of this.closed) for (const item of q.items) visit(item);
    if (this.open) for (const item of this.open.items) visit(item);
  }

  /** Items held: draining + closed + open. */
  get size(): number {
    return this.held;
  }

  /** A snapshot of the counts; reads only, never closes a sub-queue. */
  stats(): SubQueueStats {
    return {
      held: this.held,
      draining: this.draining.length,
      closedSubQueues: this.closed.length,
      open: this.open?.items.length ?? 0,
      streaming: this.streaming,
    };
  }

  private closeOpenIfDue(rules: EffectiveRules, atMs: number): void {
    const open = this.open;
    if (!open) return;
    const full = rules.maxCount !== undefined && open.count >= rules.maxCount;
    const expired = atMs >= open.firstReceivedAtMs + rules.maxAgeMs;
    if (!full && !expired) return;
    this.open = undefined;
    if (this.streaming) {
      // It was already draining: what it has left goes on, in the order received.
      this.streaming = false;
      this.startDraining(open.items, "fifo");
    } else {
      this.closed.push(open);
    }
  }

  private takeClosed(secondary: Scheme): SubQueue<T> | undefined {
    if (this.closed.length === 0) return undefined;
    switch (secondary) {
      case "fifo":
        return this.closed.shift();
      case "lifo":
        return this.closed.pop();
      case "random":
        return this.closed.splice(randomIndex(this.random, this.closed.length), 1)[0];
    }
  }

  private startDraining(items: T[], primary: Scheme): void {
    // The scheduler owns `items` once the sub-queue is closed, so it is rearranged in place.
    if (primary === "fifo") items.reverse();
    this.draining = items;
    this.drainingRandom = primary === "random";
  }

  /** Uniform pick among the remaining items; swap-remove is fine since their order is irrelevant. */
  private takeRandomItem(): T {
    const items = this.draining;
    const i = randomIndex(this.random, items.length);
    const item = items[i]!;
    items[i] = items[items.length - 1]!;
    items.pop();
    return item;
  }
}
