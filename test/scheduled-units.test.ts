/**
 * Scheduled delivery's pure parts: what `deliverAt`, `delayMs` and `--in` accept and the refusals,
 * due times, the releaser's index, and the server-clock estimate (fake probes, fake clock).
 */
import { describe, expect, it } from "vitest";
import { validateSubmission, type SubmissionContext } from "../runtime/pipeline/envelope.js";
import { checkSchedule, dueAt, MAX_DELAY_MS, parseDeliverAt, parseDuration, parseIsoTime } from "../runtime/pipeline/schedule.js";
import { bestEstimate, DueIndex, releasedEnvelope, ServerClock, timestampMs, type ClockSample } from "../runtime/scheduled/index.js";

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

describe("deliverAt", () => {
  it("takes ms since the epoch and ISO 8601 times with Z or an offset", () => {
    expect(parseDeliverAt(NOW)).toEqual({ ok: true, ms: NOW });
    expect(parseDeliverAt("2026-12-01T12:00:00Z")).toEqual({ ok: true, ms: NOW });
    expect(parseDeliverAt("2026-12-01T13:00:00+01:00")).toEqual({ ok: true, ms: NOW });
    expect(parseDeliverAt("2026-12-01T06:30-0530")).toEqual({ ok: true, ms: NOW });
    expect(parseDeliverAt("2026-12-01T12:00:00.250Z")).toEqual({ ok: true, ms: NOW + 250 });
    expect(parseDeliverAt("2026-12-01T12:00:00.123456789Z")).toEqual({ ok: true, ms: NOW + 123 });
    expect(parseIsoTime("2028-02-29T00:00:00Z")).toBe(Date.UTC(2028, 1, 29));
  });

  it("refuses times without an offset, impossible dates, other types, and seconds for ms", () => {
    const error = (v: unknown) => {
      const r = parseDeliverAt(v);
      return r.ok ? "accepted" : r.error;
    };
    expect(error("2026-12-01T12:00:00")).toBe(
      '"deliverAt" "2026-12-01T12:00:00" is not an ISO 8601 time with an offset: write it as "2026-12-24T18:00:00Z" or "2026-12-24T19:00:00+01:00" (or give ms since the epoch)',
    );
    for (const v of ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01 12:00:00Z", "tomorrow", "", "2026-12-01T12:00:00+25:00"]) {
      expect(error(v), v).toMatch(/is not an ISO 8601 time with an offset/);
    }
    expect(error(1_764_590_400)).toBe('"deliverAt" must be ms since the epoch, 2000 or later (946684800000 or more), got 1764590400; 1764590400 looks like seconds: multiply by 1000');
    expect(error(-1)).toMatch(/^"deliverAt" must be ms since the epoch, 2000 or later .* got -1$/);
    expect(error(NOW + 0.5)).toBe(`"deliverAt" must be a whole number of ms since the epoch, got ${NOW + 0.5}`);
    expect(error(Number.NaN)).toBe('"deliverAt" must be a whole number of ms since the epoch, got NaN');
    expect(error(true)).toBe('"deliverAt" must be ms since the epoch (a number) or an ISO 8601 time (a string), got boolean');
    expect(error(null)).toBe('"deliverAt" must be ms since the epoch (a number) or an ISO 8601 time (a string), got null');
    expect(error("1999-12-31T23:59:59Z")).toBe('"deliverAt" "1999-12-31T23:59:59Z" is before 2000: give a time of 2000 or later');
  });
});

describe("checkSchedule", () => {
  it("takes one of deliverAt and delayMs, or neither", () => {
    expect(checkSchedule(undefined, undefined, NOW)).toEqual({ ok: true, schedule: {} });
    expect(checkSchedule("2026-12-01T12:00:05Z", undefined, NOW)).toEqual({ ok: true, schedule: { deliverAt: NOW + 5000 } });
    expect(checkSchedule(undefined, 0, NOW)).toEqual({ ok: true, schedule: { delayMs: 0 } });
    expect(checkSchedule(undefined, MAX_DELAY_MS, NOW)).toEqual({ ok: true, schedule: { delayMs: MAX_DELAY_MS } });
  });

  it("a time in the past is accepted (due at once)", () => {
    expect(checkSchedule(NOW - 3_600_000, undefined, NOW)).toEqual({ ok: true, schedule: { deliverAt: NOW - 3_600_000 } });
  });

  it("refuses both together, delays out of range, and times more than 366 days ahead", () => {
    const error = (at: unknown, delay: unknown) => {
      const r = checkSchedule(at, delay, NOW);
      return r.ok ? "accepted" : r.error;
    };
    expect(error(NOW, 10)).toMatch(/^"deliverAt" and "delayMs" were both given: a message has one due time, give "deliverAt" .* or "delayMs" .*, not both$/);
    expect(error(undefined, -1)).toBe('"delayMs" must be ≥ 0, got -1: a message cannot be due before it is accepted (0 means at once)');
    expect(error(undefined, 1.5)).toBe('"delayMs" must be an integer of milliseconds (0 to 31622400000, 366 days), got 1.5');
    expect(error(undefined, "5s")).toBe('"delayMs" must be an integer of milliseconds (0 to 31622400000, 366 days), got "5s"');
    expect(error(undefined, MAX_DELAY_MS + 1)).toBe(`"delayMs" is ${MAX_DELAY_MS + 1}, over the limit of ${MAX_DELAY_MS} (366 days)`);
    expect(error(NOW + MAX_DELAY_MS + 1, undefined)).toBe(
      `"deliverAt" is ${new Date(NOW + MAX_DELAY_MS + 1).toISOString()}, more than 366 days ahead: schedule messages at most 366 days in advance`,
    );
  });

  it("every ingest path's validator puts the normalised schedule in the envelope", () => {
    const ctx: SubmissionContext = {
      source: "submit",
      topics: { demo: { channel: "nats" } as never },
      limits: { maxPayloadBytes: 1024, maxDepth: 8, maxValues: 100, maxKeys: 100, maxStringBytes: 1024 },
      now: () => NOW,
      newId: () => "01ID",
    };
    const at = validateSubmission({ topic: "demo", deliverAt: "2026-12-01T12:00:05Z" }, ctx);
    expect(at.ok && at.envelope).toMatchObject({ id: "01ID", deliverAt: NOW + 5000 });
    expect(at.ok && "delayMs" in at.envelope).toBe(false);
    const delay = validateSubmission({ topic: "demo", delayMs: 90_000 }, ctx);
    expect(delay.ok && delay.envelope).toMatchObject({ delayMs: 90_000 });
    const plain = validateSubmission({ topic: "demo" }, ctx);
    expect(plain.ok && ("deliverAt" in plain.envelope || "delayMs" in plain.envelope)).toBe(false);
    expect(validateSubmission({ topic: "demo", delayMs: -5 }, ctx)).toMatchObject({ ok: false, reason: "invalid", error: expect.stringMatching(/^"delayMs" must be ≥ 0/) });
  });
});

describe("due times", () => {
  it("deliverAt is absolute; delayMs counts from the stored timestamp; neither is due at once", () => {
    expect(dueAt({ deliverAt: NOW }, NOW - 10_000)).toBe(NOW);
    expect(dueAt({ delayMs: 1500 }, NOW)).toBe(NOW + 1500);
    expect(dueAt({}, NOW)).toBe(NOW);
  });

  it("a released envelope carries its due time as deliverAt and no delayMs", () => {
    const env = { id: "a", topic: "demo", data: {}, createdAt: NOW, source: "nats" as const, attempts: 0, delayMs: 5000 };
    expect(releasedEnvelope(env, NOW + 5000)).toEqual({ id: "a", topic: "demo", data: {}, createdAt: NOW, source: "nats", attempts: 0, deliverAt: NOW + 5000 });
  });
});

describe("--in durations", () => {
  it("take a number and a unit, or several", () => {
    const ms = (t: string) => {
      const r = parseDuration(t);
      return r.ok ? r.ms : r.error;
    };
    expect(ms("1500ms")).toBe(1500);
    expect(ms("90s")).toBe(90_000);
    expect(ms("5m")).toBe(300_000);
    expect(ms("2h")).toBe(7_200_000);
    expect(ms("1d")).toBe(86_400_000);
    expect(ms("1h30m")).toBe(5_400_000);
    expect(ms("2.5s")).toBe(2500);
    expect(ms("0s")).toBe(0);
    expect(ms("366d")).toBe(MAX_DELAY_MS);
  });

  it("refuse anything else, saying how to write one", () => {
    for (const t of ["5", "5 m", "five minutes", "-5s", "5y", "", "1.5.5s", "ms"]) {
      const r = parseDuration(t);
      expect(r.ok, t).toBe(false);
      if (!r.ok) expect(r.error).toBe(`${JSON.stringify(t)} is not a duration: write it as a number and a unit (ms, s, m, h, d), such as 1500ms, 90s, 5m, 2h or 1h30m`);
    }
    expect(parseDuration("367d")).toEqual({ ok: false, error: '"367d" is over the longest delay, 366 days' });
  });
});

describe("DueIndex", () => {
  const e = (seq: number, dueAt: number) => ({ seq, id: `m${seq}`, topic: "demo", dueAt });

  it("hands out what is due, earliest first, ties in stream order", () => {
    const index = new DueIndex();
    for (const [seq, due] of [[1, 300], [2, 100], [3, 200], [4, 100], [5, 900]] as const) index.add(e(seq, due));
    expect(index.nextDue()).toBe(100);
    expect(index.takeDue(250).map((x) => x.seq)).toEqual([2, 4, 3]);
    expect(index.takeDue(250)).toEqual([]);
    expect(index.nextDue()).toBe(300);
    expect(index.size).toBe(2);
    expect(index.takeDue(Infinity, 1).map((x) => x.seq)).toEqual([1]);
  });

  it("skips removed entries and indexes a sequence once", () => {
    const index = new DueIndex();
    expect(index.add(e(1, 100))).toBe(true);
    expect(index.add(e(1, 50))).toBe(false);
    index.add(e(2, 200));
    index.remove(1);
    expect(index.has(1)).toBe(false);
    expect(index.nextDue()).toBe(200);
    index.add(e(1, 300));
    expect(index.takeDue(1000).map((x) => [x.seq, x.dueAt])).toEqual([[2, 200], [1, 300]]);
    expect(index.nextDue()).toBeUndefined();
  });

  it("keeps order over many random entries", () => {
    const index = new DueIndex();
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const dues = Array.from({ length: 2000 }, (_, i) => ({ seq: i + 1, due: Math.floor(rand() * 500) }));
    for (const d of dues) index.add(e(d.seq, d.due));
    for (const d of dues.filter((_, i) => i % 3 === 0)) index.remove(d.seq);
    const out = index.takeDue(Infinity);
    const expected = dues.filter((_, i) => i % 3 !== 0).sort((a, b) => a.due - b.due || a.seq - b.seq);
    expect(out.map((x) => x.seq)).toEqual(expected.map((d) => d.seq));
  });
});

describe("the server's clock", () => {
  it("is estimated from the probe with the shortest round trip, at its midpoint", () => {
    const samples: ClockSample[] = [
      { sentAt: 0, ackedAt: 10, serverMs: 1000 },
      { sentAt: 20, ackedAt: 22, serverMs: 1026 },
      { sentAt: 30, ackedAt: 36, serverMs: 1040 },
    ];
    expect(bestEstimate(samples)).toEqual({ serverMs: 1026, at: 21, uncertaintyMs: 1 });
    expect(bestEstimate([])).toBeUndefined();
  });

  it("reads now from the monotonic clock, whatever this host's wall clock says", async () => {
    let mono = 5000;
    // The server runs 7 s ahead of this process's monotonic origin plus NOW; every probe takes 2 ms.
    const serverAt = (m: number) => NOW + 7000 + m;
    const clock = new ServerClock({
      monotonic: () => mono,
      probe: async () => {
        const sentAt = mono;
        mono += 2;
        return { sentAt, ackedAt: mono, serverMs: serverAt(sentAt + 1) };
      },
    });
    expect(clock.ready).toBe(false);
    expect(clock.now()).toBeUndefined();
    expect(await clock.sync()).toBe(true);
    expect(clock.uncertaintyMs).toBe(1);
    mono += 12_345;
    expect(clock.now()).toBe(serverAt(mono));
  });

  it("stays unready while every probe fails", async () => {
    const clock = new ServerClock({ probe: async () => Promise.reject(new Error("no NATS")) });
    expect(await clock.sync()).toBe(false);
    expect(clock.ready).toBe(false);
  });

  it("reads JetStream timestamps to the microsecond", () => {
    expect(timestampMs("2026-12-01T12:00:00.123456789Z")).toBeCloseTo(NOW + 123.456789, 6);
    expect(timestampMs("2026-12-01T12:00:00Z")).toBe(NOW);
  });
});
