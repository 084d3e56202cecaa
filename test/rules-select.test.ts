import { describe, expect, it, vi } from "vitest";
import { randomIndex, seededRandom } from "../runtime/rules/random.js";
import { RateMeter, calendarMatches, effectiveRules, isValidTimeZone } from "../runtime/rules/select.js";
import { DEFAULT_MAX_AGE_MS, type CalendarEntry, type Rules } from "../runtime/rules/types.js";

const at = (iso: string) => Date.parse(iso);
const noLoad = () => 0;
const base: Rules = { primary: "fifo", secondary: "fifo", maxCount: 10, maxAgeMs: 500 };

describe("effectiveRules: base", () => {
  it("is the base rule when no entry matches", () => {
    expect(effectiveRules(base, 0, noLoad)).toEqual({
      primary: "fifo",
      secondary: "fifo",
      maxCount: 10,
      maxAgeMs: 500,
      source: "base",
    });
  });

  it("maxCount only: maxAgeMs takes the default", () => {
    const r = effectiveRules({ primary: "lifo", secondary: "random", maxCount: 3 }, 0, noLoad);
    expect(r).toMatchObject({ maxCount: 3, maxAgeMs: DEFAULT_MAX_AGE_MS });
  });

  it("maxAgeMs only: maxCount stays undefined (pure time windows)", () => {
    const r = effectiveRules({ primary: "lifo", secondary: "random", maxAgeMs: 250 }, 0, noLoad);
    expect(r.maxCount).toBeUndefined();
    expect(r.maxAgeMs).toBe(250);
  });
});

describe("effectiveRules: overrides", () => {
  it("an entry's set fields replace the base's; unset fields keep the base's", () => {
    const rules: Rules = { ...base, calendar: [{ primary: "lifo", maxCount: 2 }] };
    expect(effectiveRules(rules, 0, noLoad)).toEqual({
      primary: "lifo",
      secondary: "fifo",
      maxCount: 2,
      maxAgeMs: 500,
      source: "calendar[0]",
    });
  });

  it("an entry's maxCount over a time-window base gives both limits", () => {
    const rules: Rules = {
      primary: "fifo",
      secondary: "fifo",
      maxAgeMs: 300,
      load: [{ windowMs: 1000, thresholdPerSec: 0, maxCount: 5 }],
    };
    expect(effectiveRules(rules, 0, noLoad)).toMatchObject({
      maxCount: 5,
      maxAgeMs: 300,
      source: "load[0]",
    });
  });

  it("the source is the entry's name when it has one", () => {
    const rules: Rules = {
      ...base,
      calendar: [{ days: ["tue"] }, { name: "weekend-lifo", primary: "lifo" }],
    };
    expect(effectiveRules(rules, 0, noLoad).source).toBe("weekend-lifo"); // 1970-01-01 is a Thursday
  });

  it("the first matching calendar entry wins", () => {
    const rules: Rules = {
      ...base,
      calendar: [{ days: ["sat"], primary: "random" }, { primary: "lifo" }, { secondary: "lifo" }],
    };
    const monday = at("2024-01-01T12:00:00Z");
    expect(effectiveRules(rules, monday, noLoad)).toMatchObject({
      primary: "lifo",
      secondary: "fifo",
      source: "calendar[1]",
    });
  });

  it("calendar entries are checked before load entries, and load is then not measured", () => {
    const receivedPerSec = vi.fn(() => 1e9);
    const rules: Rules = {
      ...base,
      calendar: [{ days: ["mon"], primary: "lifo" }],
      load: [{ windowMs: 1000, thresholdPerSec: 1, primary: "random" }],
    };
    expect(effectiveRules(rules, at("2024-01-01T12:00:00Z"), receivedPerSec).source).toBe("calendar[0]");
    expect(receivedPerSec).not.toHaveBeenCalled();
    const tuesday = at("2024-01-02T12:00:00Z");
    expect(effectiveRules(rules, tuesday, receivedPerSec)).toMatchObject({
      primary: "random",
      source: "load[0]",
    });
  });

  it("load entries match at or above their threshold, over their own window; the first match wins", () => {
    const rates: Record<number, number> = { 1000: 50, 10_000: 20 };
    const receivedPerSec = vi.fn((windowMs: number) => rates[windowMs] ?? 0);
    const rules: Rules = {
      ...base,
      load: [
        { name: "burst", windowMs: 1000, thresholdPerSec: 100, primary: "lifo" },
        { name: "busy", windowMs: 10_000, thresholdPerSec: 20, secondary: "random" },
        { name: "any", windowMs: 1000, thresholdPerSec: 0, primary: "random" },
      ],
    };
    expect(effectiveRules(rules, 0, receivedPerSec).source).toBe("busy");
    expect(receivedPerSec.mock.calls.map((c) => c[0])).toEqual([1000, 10_000]);
    rates[1000] = 100;
    expect(effectiveRules(rules, 0, receivedPerSec)).toMatchObject({ primary: "lifo", source: "burst" });
    rates[1000] = 0;
    rates[10_000] = 19.99;
    expect(effectiveRules(rules, 0, receivedPerSec).source).toBe("any");
  });
});

describe("calendar matching", () => {
  const monday = at("2024-01-01T12:00:00Z");

  it("days of the week", () => {
    expect(calendarMatches({ days: ["mon"] }, monday)).toBe(true);
    expect(calendarMatches({ days: ["sat", "sun", "mon"] }, monday)).toBe(true);
    expect(calendarMatches({ days: ["tue"] }, monday)).toBe(false);
    const week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
    week.forEach((day, i) => {
      expect(calendarMatches({ days: [day] }, monday + i * 86_400_000)).toBe(true);
    });
  });

  it("date ranges are inclusive at both ends; any range may match", () => {
    const holidays: CalendarEntry = {
      dates: [
        { from: "2023-12-24", to: "2024-01-01" },
        { from: "2024-04-01", to: "2024-04-01" },
      ],
    };
    expect(calendarMatches(holidays, at("2023-12-24T00:00:00Z"))).toBe(true);
    expect(calendarMatches(holidays, at("2024-01-01T23:59:59Z"))).toBe(true);
    expect(calendarMatches(holidays, at("2024-01-02T00:00:00Z"))).toBe(false);
    expect(calendarMatches(holidays, at("2023-12-23T23:59:59Z"))).toBe(false);
    expect(calendarMatches(holidays, at("2024-04-01T08:00:00Z"))).toBe(true);
    expect(calendarMatches(holidays, at("2024-04-02T08:00:00Z"))).toBe(false);
  });

  it("time windows: from inclusive, to exclusive", () => {
    const office: CalendarEntry = { time: { from: "09:00", to: "17:00" } };
    expect(calendarMatches(office, at("2024-01-01T08:59:59Z"))).toBe(false);
    expect(calendarMatches(office, at("2024-01-01T09:00:00Z"))).toBe(true);
    expect(calendarMatches(office, at("2024-01-01T16:59:59Z"))).toBe(true);
    expect(calendarMatches(office, at("2024-01-01T17:00:00Z"))).toBe(false);
  });

  it("time windows wrap midnight when from > to", () => {
    const night: CalendarEntry = { time: { from: "22:00", to: "06:00" } };
    const cases: [string, boolean][] = [
      ["21:59", false], ["22:00", true], ["23:30", true], ["00:00", true],
      ["02:00", true], ["05:59", true], ["06:00", false], ["12:00", false],
    ];
    for (const [hhmm, expected] of cases) {
      expect(calendarMatches(night, at(`2024-01-01T${hhmm}:00Z`)), hhmm).toBe(expected);
    }
  });

  it("a window with from === to is empty", () => {
    expect(calendarMatches({ time: { from: "10:00", to: "10:00" } }, at("2024-01-01T10:00:00Z"))).toBe(false);
  });

  it("all given conditions must hold", () => {
    const mondayOffice: CalendarEntry = {
      days: ["mon"],
      time: { from: "09:00", to: "17:00" },
      dates: [{ from: "2024-01-01", to: "2024-12-31" }],
    };
    expect(calendarMatches(mondayOffice, at("2024-01-01T10:00:00Z"))).toBe(true);
    expect(calendarMatches(mondayOffice, at("2024-01-01T08:00:00Z"))).toBe(false);
    expect(calendarMatches(mondayOffice, at("2024-01-02T10:00:00Z"))).toBe(false);
    expect(calendarMatches(mondayOffice, at("2023-12-25T10:00:00Z"))).toBe(false); // a Monday, out of range
    expect(calendarMatches({}, 0)).toBe(true);
  });

  it("reads days, dates and times in the entry's zone (UTC by default)", () => {
    // 03:00 UTC on Tuesday 2 Jan = 22:00 EST on Monday 1 Jan.
    const instant = at("2024-01-02T03:00:00Z");
    const ny = { timeZone: "America/New_York" };
    expect(calendarMatches({ days: ["mon"] }, instant)).toBe(false);
    expect(calendarMatches({ ...ny, days: ["mon"] }, instant)).toBe(true);
    expect(calendarMatches({ ...ny, dates: [{ from: "2024-01-01", to: "2024-01-01" }] }, instant)).toBe(true);
    expect(calendarMatches({ dates: [{ from: "2024-01-01", to: "2024-01-01" }] }, instant)).toBe(false);
    expect(calendarMatches({ ...ny, time: { from: "21:00", to: "23:00" } }, instant)).toBe(true);
    expect(calendarMatches({ timeZone: "UTC", time: { from: "21:00", to: "23:00" } }, instant)).toBe(false);
  });

  it("follows daylight saving time and half-hour offsets", () => {
    // 02:30 UTC on Monday 1 July = 22:30 EDT (UTC-4) on Sunday 30 June.
    const summer = at("2024-07-01T02:30:00Z");
    const sundayNight: CalendarEntry = {
      timeZone: "America/New_York",
      days: ["sun"],
      time: { from: "22:30", to: "22:31" },
    };
    expect(calendarMatches(sundayNight, summer)).toBe(true);
    // 18:45 UTC on Monday 1 Jan = 00:15 IST on Tuesday 2 Jan.
    const kolkata: CalendarEntry = {
      timeZone: "Asia/Kolkata",
      days: ["tue"],
      time: { from: "00:15", to: "00:16" },
    };
    expect(calendarMatches(kolkata, at("2024-01-01T18:45:00Z"))).toBe(true);
  });

  it("switches the effective rule at the same instant depending on the zone", () => {
    const instant = at("2024-01-02T03:00:00Z");
    const rules = (timeZone: string): Rules => ({
      ...base,
      calendar: [{ timeZone, days: ["mon"], primary: "lifo" }],
    });
    expect(effectiveRules(rules("America/New_York"), instant, noLoad).primary).toBe("lifo");
    expect(effectiveRules(rules("UTC"), instant, noLoad).primary).toBe("fifo");
  });

  it("validates time zones, and an unknown zone throws when evaluated", () => {
    expect(isValidTimeZone("Europe/Paris")).toBe(true);
    expect(isValidTimeZone("Mars/Olympus_Mons")).toBe(false);
    expect(() => calendarMatches({ timeZone: "Mars/Olympus_Mons" }, 0)).toThrow(RangeError);
  });
});

describe("RateMeter", () => {
  it("counts messages per second over a sliding window", () => {
    const meter = new RateMeter();
    for (let t = 0; t < 1000; t += 20) meter.record(t); // 50 in the first second
    expect(meter.perSec(1000, 999)).toBe(50);
    expect(meter.perSec(2000, 999)).toBe(25);
    expect(meter.perSec(500, 999)).toBe(50); // 25 in the last 500 ms
    expect(meter.perSec(1000, 1499)).toBe(25);
    expect(meter.perSec(1000, 2000)).toBe(0);
  });

  it("records several at once and forgets slots reused after wrapping the ring", () => {
    const meter = new RateMeter({ maxWindowMs: 1000 });
    meter.record(0, 10);
    expect(meter.perSec(1000, 0)).toBe(10);
    meter.record(1000, 3); // the same slot as t=0, one ring later
    expect(meter.perSec(1000, 1000)).toBe(3);
    meter.record(5_000_000);
    expect(meter.perSec(1000, 5_000_000)).toBe(1);
  });

  it("clamps windows to maxWindowMs, capped at one hour; a window ≤ 0 is 0", () => {
    expect(new RateMeter({ maxWindowMs: 36_000_000 }).maxWindowMs).toBe(3_600_000);
    const meter = new RateMeter({ maxWindowMs: 2000 });
    meter.record(0, 100);
    expect(meter.perSec(10_000, 1999)).toBe(50); // measured over 2 s
    expect(meter.perSec(0, 0)).toBe(0);
    expect(meter.perSec(-5, 0)).toBe(0);
  });

  it("drives load entries on and off", () => {
    const meter = new RateMeter({ maxWindowMs: 10_000 });
    const busy = { name: "busy", windowMs: 1000, thresholdPerSec: 100, primary: "lifo", maxCount: 50 } as const;
    const rules: Rules = { ...base, load: [busy] };
    const rulesAt = (now: number) => effectiveRules(rules, now, (w) => meter.perSec(w, now));
    for (let t = 0; t < 1000; t += 20) meter.record(t);
    expect(rulesAt(999).source).toBe("base");
    for (let t = 1000; t < 2000; t += 5) meter.record(t); // 200/s
    expect(rulesAt(1999)).toMatchObject({ source: "busy", primary: "lifo", maxCount: 50 });
    expect(rulesAt(3500).source).toBe("base");
  });
});

describe("seededRandom", () => {
  it("is reproducible, in [0, 1), and differs between seeds", () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(seededRandom(8)()).not.toBe(xs[0]);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it("randomIndex stays in range even when the source returns 1", () => {
    expect(randomIndex(() => 1, 5)).toBe(4);
    expect(randomIndex(() => 0, 5)).toBe(0);
    expect(randomIndex(() => 0.5, 4)).toBe(2);
  });
});
