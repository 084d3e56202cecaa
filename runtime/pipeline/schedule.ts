/**
 * Scheduled delivery's input: what `deliverAt` and `delayMs` may be, when a scheduled message is
 * due, and the durations `herald publish --in` takes. Pure: nothing here reads a clock or throws.
 *
 * A message is due at `deliverAt` (an absolute time, ms since the epoch) or `delayMs` after its
 * acceptance, and acceptance is when the JetStream server stored it (its stored timestamp), never
 * the ingesting host's wall clock: both are times on the server's clock (README, Scheduled delivery).
 */

/** Longest accepted delay, and how far ahead `deliverAt` may be: 366 days, in ms. */
export const MAX_DELAY_MS = 366 * 86_400_000;
/** Earliest accepted `deliverAt`, 2000-01-01T00:00:00Z: anything smaller is a unit mistake (seconds for ms). */
export const MIN_DELIVER_AT_MS = 946_684_800_000;

/** The schedule fields of an accepted envelope; at most one is set. */
export interface Schedule {
  /** ms since the epoch on the server's clock. */
  deliverAt?: number;
  /** ms after the message is stored. */
  delayMs?: number;
}

export type ScheduleResult = { ok: true; schedule: Schedule } | { ok: false; error: string };

/**
 * ISO 8601 date-time with an explicit offset: `2026-12-24T18:00:00Z`, `2026-12-24T19:00+01:00`,
 * fractions to nanoseconds. A time without an offset would mean the reading host's zone, so it is refused.
 */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/i;

const HOW_TO_SCHEDULE = `give "deliverAt" (ms since the epoch, or an ISO 8601 time with an offset such as "2026-12-24T18:00:00Z") or "delayMs" (an integer of ms)`;

/**
 * Checks a submission's `deliverAt` and `delayMs` (either may be undefined) and normalises
 * `deliverAt` to ms since the epoch. `nowMs` only bounds how far ahead `deliverAt` may be (a bound
 * of a year, which no clock skew matters to); whether a message is due is judged elsewhere.
 */
export function checkSchedule(deliverAt: unknown, delayMs: unknown, nowMs: number): ScheduleResult {
  if (deliverAt !== undefined && delayMs !== undefined) {
    return { ok: false, error: `"deliverAt" and "delayMs" were both given: a message has one due time, ${HOW_TO_SCHEDULE}, not both` };
  }
  if (delayMs !== undefined) {
    const d = parseDelayMs(delayMs);
    return d.ok ? { ok: true, schedule: { delayMs: d.ms } } : d;
  }
  if (deliverAt !== undefined) {
    const t = parseDeliverAt(deliverAt);
    if (!t.ok) return t;
    if (t.ms > nowMs + MAX_DELAY_MS) {
      return { ok: false, error: `"deliverAt" is ${new Date(t.ms).toISOString()}, more than 366 days ahead: schedule messages at most 366 days in advance` };
    }
    return { ok: true, schedule: { deliverAt: t.ms } };
  }
  return { ok: true, schedule: {} };
}

/** `delayMs`: an integer of ms, 0 (due at once) to {@link MAX_DELAY_MS}. */
export function parseDelayMs(value: unknown): { ok: true; ms: number } | { ok: false; error: string } {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    return { ok: false, error: `"delayMs" must be an integer of milliseconds (0 to ${MAX_DELAY_MS}, 366 days), got ${shownValue(value)}` };
  }
  if (value < 0) return { ok: false, error: `"delayMs" must be ≥ 0, got ${value}: a message cannot be due before it is accepted (0 means at once)` };
  if (value > MAX_DELAY_MS) return { ok: false, error: `"delayMs" is ${value}, over the limit of ${MAX_DELAY_MS} (366 days)` };
  return { ok: true, ms: value };
}

/**
 * `deliverAt`: an integer of ms since the epoch (2000 or later), or an ISO 8601 time with `Z` or
 * an offset. A time in the past is fine (the message is due at once).
 */
export function parseDeliverAt(value: unknown): { ok: true; ms: number } | { ok: false; error: string } {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) return { ok: false, error: `"deliverAt" must be a whole number of ms since the epoch, got ${shownValue(value)}` };
    if (value < MIN_DELIVER_AT_MS) {
      const hint = value >= 946_684_800 && value < 4_102_444_800 ? `; ${value} looks like seconds: multiply by 1000` : "";
      return { ok: false, error: `"deliverAt" must be ms since the epoch, 2000 or later (${MIN_DELIVER_AT_MS} or more), got ${value}${hint}` };
    }
    if (value > 8.64e15) return { ok: false, error: `"deliverAt" is ${value}, past the largest time JavaScript can represent` };
    return { ok: true, ms: value };
  }
  if (typeof value === "string") {
    const ms = parseIsoTime(value);
    if (ms === undefined) {
      return {
        ok: false,
        error: `"deliverAt" ${shownValue(value)} is not an ISO 8601 time with an offset: write it as "2026-12-24T18:00:00Z" or "2026-12-24T19:00:00+01:00" (or give ms since the epoch)`,
      };
    }
    if (ms < MIN_DELIVER_AT_MS) return { ok: false, error: `"deliverAt" ${shownValue(value)} is before 2000: give a time of 2000 or later` };
    return { ok: true, ms };
  }
  return { ok: false, error: `"deliverAt" must be ms since the epoch (a number) or an ISO 8601 time (a string), got ${shownValue(value)}` };
}

/** ms since the epoch of an ISO 8601 time with an offset (see {@link ISO_TIME}); undefined if it is not one or names no real time. */
export function parseIsoTime(text: string): number | undefined {
  const m = ISO_TIME.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = "00", frac = "", zone] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMin = 0;
  if (zone!.toUpperCase() !== "Z") {
    const digits = zone!.replace(":", "");
    const oh = Number(digits.slice(1, 3));
    const om = Number(digits.slice(3, 5));
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (digits[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const fracMs = frac === "" ? 0 : Number(`0.${frac}`) * 1000;
  return Date.UTC(year, month - 1, day, hour, minute, second) + Math.round(fracMs) - offsetMin * 60_000;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * When a message with this schedule is due, on the server's clock: `deliverAt`, or `delayMs` after
 * `storedAtMs` (the JetStream timestamp of the message that carries it). Unscheduled: at once.
 */
export function dueAt(schedule: Schedule, storedAtMs: number): number {
  if (schedule.deliverAt !== undefined) return schedule.deliverAt;
  return storedAtMs + (schedule.delayMs ?? 0);
}

/** True when the envelope carries a schedule at all (`delayMs: 0` included: due at acceptance). */
export function isScheduled(schedule: Schedule): boolean {
  return schedule.deliverAt !== undefined || schedule.delayMs !== undefined;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration as `herald publish --in` takes it: a number and a unit, or several (`1500ms`, `90s`,
 * `5m`, `2h`, `1d`, `1h30m`, `2.5s`), in ms (rounded), at most {@link MAX_DELAY_MS}.
 */
export function parseDuration(text: string): { ok: true; ms: number } | { ok: false; error: string } {
  const how = `write it as a number and a unit (ms, s, m, h, d), such as 1500ms, 90s, 5m, 2h or 1h30m`;
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/i.test(trimmed)) return { ok: false, error: `${JSON.stringify(text)} is not a duration: ${how}` };
  let ms = 0;
  for (const part of trimmed.toLowerCase().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(part[1]) * DURATION_UNITS[part[2]!]!;
  ms = Math.round(ms);
  if (ms > MAX_DELAY_MS) return { ok: false, error: `${JSON.stringify(text)} is over the longest delay, 366 days` };
  return { ok: true, ms };
}

function shownValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === "number") return String(value);
  return typeof value === "object" ? "an object" : typeof value;
}
