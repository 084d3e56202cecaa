/**
 * Which rule is in force right now: the base rule, or the first calendar or load entry that
 * matches (seed US9065778's calendar and load entries). Pure: the time and the received rate are
 * passed in, so every case is testable without a clock.
 */
import {
  DEFAULT_MAX_AGE_MS,
  type CalendarEntry,
  type EffectiveRules,
  type LoadEntry,
  type Rules,
  type SchemeSet,
  type Weekday,
} from "./types.js";

/**
 * The rule in force at `nowMs`.
 *
 * Calendar entries are checked first, in order, then load entries, in order; the first match wins
 * and its set fields replace the base's (unset fields keep the base's). `maxAgeMs` falls back to
 * {@link DEFAULT_MAX_AGE_MS} so a partial sub-queue never waits forever; `maxCount` stays
 * undefined when neither sets it (sub-queues are then pure time windows).
 *
 * Rules are expected to be validated already (see {@link isValidTimeZone}); an unknown time zone
 * throws a `RangeError` here.
 *
 * @param nowMs wall-clock time, ms since the epoch.
 * @param receivedPerSec messages received per second over the last `windowMs` ms; only called
 *   when no calendar entry matched, once per load entry tried.
 */
export function effectiveRules(
  rules: Rules,
  nowMs: number,
  receivedPerSec: (windowMs: number) => number,
): EffectiveRules {
  const calendar = rules.calendar ?? [];
  for (let i = 0; i < calendar.length; i++) {
    const entry = calendar[i]!;
    if (calendarMatches(entry, nowMs)) return merge(rules, entry, entry.name ?? `calendar[${i}]`);
  }
  const load = rules.load ?? [];
  for (let i = 0; i < load.length; i++) {
    const entry = load[i]!;
    if (loadMatches(entry, receivedPerSec)) return merge(rules, entry, entry.name ?? `load[${i}]`);
  }
  return merge(rules, {}, "base");
}

function merge(base: SchemeSet, override: Partial<SchemeSet>, source: string): EffectiveRules {
  return {
    primary: override.primary ?? base.primary,
    secondary: override.secondary ?? base.secondary,
    maxCount: override.maxCount ?? base.maxCount,
    maxAgeMs: override.maxAgeMs ?? base.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
    source,
  };
}

function loadMatches(entry: LoadEntry, receivedPerSec: (windowMs: number) => number): boolean {
  return receivedPerSec(entry.windowMs) >= entry.thresholdPerSec;
}

/** True when every condition the entry gives (days, dates, time) holds at `nowMs` in its zone. */
export function calendarMatches(entry: CalendarEntry, nowMs: number): boolean {
  const local = localTime(nowMs, entry.timeZone ?? "UTC");
  if (entry.days && !entry.days.includes(local.weekday)) return false;
  if (entry.dates && !entry.dates.some((r) => r.from <= local.date && local.date <= r.to)) {
    return false;
  }
  if (entry.time) {
    const from = minutesOfDay(entry.time.from);
    const to = minutesOfDay(entry.time.to);
    const m = local.minutes;
    // from > to wraps midnight (22:00–06:00); from === to is an empty window, as the strict
    // reading of "from inclusive, to exclusive" gives.
    const inside = from <= to ? from <= m && m < to : m >= from || m < to;
    if (!inside) return false;
  }
  return true;
}

/** Whether `zone` is an IANA time zone this runtime knows; for rule validation. */
export function isValidTimeZone(zone: string): boolean {
  try {
    formatterFor(zone);
    return true;
  } catch {
    return false;
  }
}

interface LocalTime {
  weekday: Weekday;
  /** `YYYY-MM-DD`, so date ranges compare as strings. */
  date: string;
  /** Minutes since local midnight. */
  minutes: number;
}

// Building an Intl.DateTimeFormat costs far more than using one, and rules are evaluated often.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      weekday: "short",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      // h23, not hour12: false, which some ICU versions render as "24" at midnight.
      hourCycle: "h23",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function localTime(nowMs: number, timeZone: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatterFor(timeZone).formatToParts(nowMs)) parts[p.type] = p.value;
  return {
    weekday: parts.weekday!.toLowerCase() as Weekday,
    date: `${parts.year}-${parts.month}-${parts.day}`,
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

function minutesOfDay(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

/** Options of {@link RateMeter}. */
export interface RateMeterOptions {
  /**
   * Longest window `perSec` can measure, in ms; longer windows are clamped to it. Memory is one
   * bucket per `bucketMs` of it. Capped at one hour. @defaultValue 60_000
   */
  maxWindowMs?: number;
  /** Bucket width in ms: the resolution of the sliding window. @defaultValue 100 */
  bucketMs?: number;
}

const MAX_WINDOW_CAP_MS = 3_600_000;

/**
 * Counts received messages over a sliding window, for load entries. Pure: every call is given
 * the time. Memory is bounded by a ring of per-bucket counters, so the window's edges are exact
 * to one bucket (the current, partial bucket counts whole).
 */
export class RateMeter {
  readonly maxWindowMs: number;
  readonly bucketMs: number;
  // Each slot remembers which bucket (time / bucketMs) its count belongs to, so stale slots are
  // recognised without a sweep when time jumps ahead.
  private readonly counts: Float64Array;
  private readonly bucketOf: Float64Array;

  constructor(options: RateMeterOptions = {}) {
    this.bucketMs = Math.max(1, options.bucketMs ?? 100);
    const wanted = options.maxWindowMs ?? 60_000;
    this.maxWindowMs = Math.min(MAX_WINDOW_CAP_MS, Math.max(this.bucketMs, wanted));
    const slots = Math.ceil(this.maxWindowMs / this.bucketMs);
    this.counts = new Float64Array(slots);
    this.bucketOf = new Float64Array(slots).fill(Number.NaN); // NaN matches no bucket
  }

  /** Counts `n` messages (default 1) received at `nowMs`. */
  record(nowMs: number, n = 1): void {
    const bucket = Math.floor(nowMs / this.bucketMs);
    const slot = this.slotOf(bucket);
    if (this.bucketOf[slot] !== bucket) {
      this.bucketOf[slot] = bucket;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += n;
  }

  /**
   * Messages per second received over the last `windowMs` ms before `nowMs` (clamped to
   * `maxWindowMs`). 0 for a window ≤ 0.
   */
  perSec(windowMs: number, nowMs: number): number {
    if (!(windowMs > 0)) return 0;
    const buckets = Math.ceil(Math.min(windowMs, this.maxWindowMs) / this.bucketMs);
    const newest = Math.floor(nowMs / this.bucketMs);
    let total = 0;
    for (let bucket = newest - buckets + 1; bucket <= newest; bucket++) {
      const slot = this.slotOf(bucket);
      if (this.bucketOf[slot] === bucket) total += this.counts[slot]!;
    }
    return total / ((buckets * this.bucketMs) / 1000);
  }

  private slotOf(bucket: number): number {
    const n = this.counts.length;
    return ((bucket % n) + n) % n;
  }
}
