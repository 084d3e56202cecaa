/**
 * Validation of retrieval rules (types in ./types.ts), shared by `cluster.config.json` and
 * `herald rules set`. Unknown keys are errors: a typo such as `maxcount` must not silently leave the
 * rule without its limit.
 */
import * as z from "zod";
import { RulesError, humanMessage, integer, mustBe, toIssues } from "../config/errors.js";
import type { Rules } from "./types.js";

export { RulesError };

/**
 * Cross-field checks run even when a field failed, so one pass reports every problem; they only
 * need the value to be an object.
 */
const always = { when: (payload: { value: unknown }) => typeof payload.value === "object" && payload.value !== null };

const scheme = z.enum(["fifo", "lifo", "random"]);

const weekday = z.enum(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);

/** Upper bounds keep a typo (an extra zero or two) from turning into a sub-queue that never closes. */
const maxCount = integer(1, 100_000).describe("A sub-queue closes when it holds this many messages.");
const maxAgeMs = integer(1, 86_400_000).describe(
  "A sub-queue closes this many milliseconds after its first message was received.",
);

const timeZone = z
  .string()
  .refine(isTimeZone, {
    error: (issue) => `unknown time zone ${JSON.stringify(issue.input)} (use an IANA name such as "Europe/Paris" or "UTC")`,
  })
  .describe('IANA time zone the days, dates and times are read in. Default "UTC".');

const date = z
  .string()
  .refine(isDate, { error: (issue) => mustBe("a real date as YYYY-MM-DD", issue.input) })
  .meta({ pattern: "^\\d{4}-\\d{2}-\\d{2}$" });

const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;

const time = z
  .string()
  .regex(TIME, { error: (issue) => mustBe("a time HH:MM from 00:00 to 23:59", issue.input) });

const dateRange = z
  .strictObject({ from: date, to: date })
  .superRefine((range, ctx) => {
    if (isDate(range.from) && isDate(range.to) && range.from > range.to) {
      ctx.addIssue({ code: "custom", path: ["to"], message: `must not be before from (${range.from})` });
    }
  }, always)
  .describe("Inclusive date range.");

const timeWindow = z
  .strictObject({
    from: time.describe("Start of the window, inclusive."),
    to: time.describe("End of the window, exclusive; may be earlier than from to wrap midnight."),
  })
  .superRefine((window, ctx) => {
    if (window.from === window.to && TIME.test(window.from)) {
      ctx.addIssue({ code: "custom", path: ["to"], message: "must differ from from (an empty window never applies)" });
    }
  }, always)
  .describe("Time-of-day window (HH:MM).");

/** The base-rule fields an override may replace, all optional there. */
const overrideFields = {
  name: z.string().min(1).optional().describe("Shown in logs and `herald rules get`."),
  primary: scheme.optional().describe("Order of messages inside a sub-queue."),
  secondary: scheme.optional().describe("Order in which closed sub-queues are chosen."),
  maxCount: maxCount.optional(),
  maxAgeMs: maxAgeMs.optional(),
};

function requireOverride(entry: Record<string, unknown>, ctx: z.RefinementCtx): void {
  if (["primary", "secondary", "maxCount", "maxAgeMs"].every((key) => entry[key] === undefined)) {
    ctx.addIssue({ code: "custom", message: "must set at least one of primary, secondary, maxCount, maxAgeMs" });
  }
}

const calendarEntry = z
  .strictObject({
    ...overrideFields,
    timeZone: timeZone.optional(),
    days: z.array(weekday).min(1).optional().describe("Days of the week the entry applies on; absent means every day."),
    dates: z.array(dateRange).min(1).optional().describe("Date ranges the entry applies in; absent means every date."),
    time: timeWindow.optional(),
  })
  .superRefine((entry, ctx) => {
    requireOverride(entry, ctx);
    if (entry.days === undefined && entry.dates === undefined && entry.time === undefined) {
      ctx.addIssue({ code: "custom", message: "must set at least one of days, dates, time" });
    }
  }, always)
  .describe("Override that applies on given days, dates and/or times of day.");

const loadEntry = z
  .strictObject({
    ...overrideFields,
    windowMs: integer(100, 3_600_000).describe("Sliding window the received rate is measured over, in milliseconds."),
    thresholdPerSec: z
      .number()
      .positive()
      .describe("Received messages per second at or above which the entry applies."),
  })
  .superRefine(requireOverride, always)
  .describe("Override that applies while the received rate is at or above a threshold.");

/** A complete rule: base schemes, sub-queue limits, and overrides (first match wins, calendar first). */
export const rulesSchema = z
  .strictObject({
    primary: scheme.describe("Order of messages inside a sub-queue."),
    secondary: scheme.describe("Order in which closed sub-queues are chosen."),
    maxCount: maxCount.optional(),
    maxAgeMs: maxAgeMs.optional(),
    seed: integer().optional().describe("Seed for the random scheme, so a random order can be reproduced."),
    calendar: z.array(calendarEntry).optional().describe("Calendar overrides, tried in order before the load overrides."),
    load: z.array(loadEntry).optional().describe("Load overrides, tried in order after the calendar overrides."),
  })
  .superRefine((rule, ctx) => {
    if (rule.maxCount === undefined && rule.maxAgeMs === undefined) {
      ctx.addIssue({ code: "custom", message: "must set maxCount, maxAgeMs or both" });
    }
  }, always)
  .meta({
    id: "Rules",
    description: "Retrieval rules: how a queue is cut into sub-queues and in which order they are drained.",
  });

/**
 * Validates a rule from any source. `where` prefixes the paths in messages (default `rules`, so a
 * bad scheme reads `rules.primary: must be one of "fifo", "lifo", "random" (got "filo")`).
 * @throws RulesError listing every problem.
 */
export function parseRules(input: unknown, where = "rules"): Rules {
  const result = rulesSchema.safeParse(input, { error: humanMessage });
  if (!result.success) throw new RulesError(toIssues(result.error.issues, where));
  return result.data;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function isDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const d = new Date(Date.UTC(year, month - 1, day));
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day;
}
