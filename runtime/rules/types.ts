/**
 * Retrieval rules (seed US9065778): how a topic's queue is cut into sub-queues and in which order
 * they and their messages are retrieved. Rules live in a KV bucket, are seeded from
 * `cluster.config.json` and change at runtime with `herald rules set`.
 */

/** A retrieval scheme: first in first out, last in first out, or uniformly random. */
export type Scheme = "fifo" | "lifo" | "random";

export const SCHEMES: readonly Scheme[] = ["fifo", "lifo", "random"];

/** The part of a rule that an override may replace. */
export interface SchemeSet {
  /** Order of messages inside a sub-queue. */
  primary: Scheme;
  /** Order in which closed sub-queues are chosen. */
  secondary: Scheme;
  /** A sub-queue closes when it holds this many messages. At least one of maxCount/maxAgeMs. */
  maxCount?: number;
  /** A sub-queue closes this many ms after its first message was received. */
  maxAgeMs?: number;
}

export type Weekday = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";

/** An override that applies on given days, dates and/or times of day, in a named time zone. */
export interface CalendarEntry extends Partial<SchemeSet> {
  /** Shown in logs and `herald rules get`. */
  name?: string;
  /** IANA time zone the days, dates and times are read in. @defaultValue "UTC" */
  timeZone?: string;
  /** Days of the week the entry applies on; absent means every day. */
  days?: Weekday[];
  /** Inclusive date ranges (`YYYY-MM-DD`); absent means every date. */
  dates?: { from: string; to: string }[];
  /** Time-of-day window (`HH:MM`, `from` inclusive, `to` exclusive; may wrap midnight). */
  time?: { from: string; to: string };
}

/** An override that applies while messages received per second over `windowMs` ≥ threshold. */
export interface LoadEntry extends Partial<SchemeSet> {
  name?: string;
  /** Sliding window the received rate is measured over, in ms. */
  windowMs: number;
  /** Received messages per second at or above which the entry applies. */
  thresholdPerSec: number;
}

/** A complete rule: base schemes plus overrides; the first matching override wins (calendar first). */
export interface Rules extends SchemeSet {
  /** Seed for the random scheme, so a random order can be reproduced. Absent: seeded from time. */
  seed?: number;
  calendar?: CalendarEntry[];
  load?: LoadEntry[];
}

/** The rule in force at one moment, after overrides; maxAgeMs always set. */
export interface EffectiveRules {
  primary: Scheme;
  secondary: Scheme;
  maxCount: number | undefined;
  maxAgeMs: number;
  /** Name of the override that applied, or "base". */
  source: string;
}

/** When only maxCount is given, a partial sub-queue closes after this long. */
export const DEFAULT_MAX_AGE_MS = 100;
