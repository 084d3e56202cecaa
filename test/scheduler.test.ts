import { describe, expect, it } from "vitest";
import { SubQueueScheduler } from "../actors/subqueue/scheduler.js";
import { seededRandom } from "../runtime/rules/random.js";
import { effectiveRules } from "../runtime/rules/select.js";
import { SCHEMES, type EffectiveRules, type Scheme } from "../runtime/rules/types.js";

/** A fake clock and a scheduler whose rules can be swapped mid-test. */
function setup(initial: Partial<EffectiveRules>, seed = 1) {
  const clock = { t: 0 };
  let rules = makeRules(initial);
  const s = new SubQueueScheduler<string>({
    rules: () => rules,
    now: () => clock.t,
    random: seededRandom(seed),
  });
  return {
    s,
    clock,
    setRules: (r: Partial<EffectiveRules>) => (rules = makeRules(r)),
    /** Adds each item as received at the current time, advancing the clock `stepMs` after each. */
    receive(items: string[], stepMs = 1) {
      for (const item of items) {
        s.add(item, clock.t);
        clock.t += stepMs;
      }
    },
  };
}

function makeRules(r: Partial<EffectiveRules>): EffectiveRules {
  return { primary: "fifo", secondary: "fifo", maxCount: undefined, maxAgeMs: 100, source: "test", ...r };
}

function drain(s: SubQueueScheduler<string>): string[] {
  const out: string[] = [];
  for (let item = s.next(); item !== undefined; item = s.next()) out.push(item);
  return out;
}

const m = (...ns: number[]) => ns.map((n) => `m${n}`);
const PAIRS: [Scheme, Scheme][] = SCHEMES.flatMap((p) => SCHEMES.map((s): [Scheme, Scheme] => [p, s]));

/** DESIGN.md §4: maxCount 3, m1…m8 received before retrieval starts, C closed by maxAgeMs. */
function workedExample(primary: Scheme, secondary: Scheme, seed = 1): string[] {
  const { s, clock, receive } = setup({ primary, secondary, maxCount: 3, maxAgeMs: 100 }, seed);
  receive(m(1, 2, 3, 4, 5, 6, 7, 8));
  clock.t += 200; // past C's deadline
  return drain(s);
}

const SUBQUEUES = { A: m(1, 2, 3), B: m(4, 5, 6), C: m(7, 8) };
type Name = keyof typeof SUBQUEUES;
const subQueueOf = (item: string): Name =>
  (Object.keys(SUBQUEUES) as Name[]).find((k) => SUBQUEUES[k].includes(item))!;

/** Splits an order into runs of one sub-queue; fails unless each sub-queue is one complete run. */
function runsOf(order: string[]): { name: Name; items: string[] }[] {
  const runs: { name: Name; items: string[] }[] = [];
  for (const item of order) {
    const name = subQueueOf(item);
    if (runs.at(-1)?.name === name) runs.at(-1)!.items.push(item);
    else runs.push({ name, items: [item] });
  }
  expect(runs.map((r) => r.name).sort()).toEqual(["A", "B", "C"]);
  for (const run of runs) expect([...run.items].sort()).toEqual([...SUBQUEUES[run.name]].sort());
  return runs;
}

describe("worked example (DESIGN.md §4)", () => {
  it.each([
    ["fifo", "fifo", m(1, 2, 3, 4, 5, 6, 7, 8)],
    ["fifo", "lifo", m(7, 8, 4, 5, 6, 1, 2, 3)],
    ["lifo", "fifo", m(3, 2, 1, 6, 5, 4, 8, 7)],
    ["lifo", "lifo", m(8, 7, 6, 5, 4, 3, 2, 1)],
  ] as const)("primary %s, secondary %s", (primary, secondary, expected) => {
    expect(workedExample(primary, secondary)).toEqual(expected);
  });

  it.each(PAIRS)("primary %s, secondary %s: one sub-queue at a time, drained whole", (primary, secondary) => {
    for (let seed = 0; seed < 50; seed++) {
      const runs = runsOf(workedExample(primary, secondary, seed));
      const names = runs.map((r) => r.name).join("");
      if (secondary === "fifo") expect(names).toBe("ABC");
      if (secondary === "lifo") expect(names).toBe("CBA");
      for (const run of runs) {
        if (primary === "fifo") expect(run.items).toEqual(SUBQUEUES[run.name]);
        if (primary === "lifo") expect(run.items).toEqual([...SUBQUEUES[run.name]].reverse());
      }
    }
  });

  it.each(PAIRS.filter(([p, s]) => p === "random" || s === "random"))(
    "primary %s, secondary %s: reproducible with the same seed",
    (primary, secondary) => {
      for (const seed of [1, 42, 2024]) {
        expect(workedExample(primary, secondary, seed)).toEqual(workedExample(primary, secondary, seed));
      }
    },
  );

  it("random secondary visits the sub-queues in all 6 orders, roughly uniformly", () => {
    const counts = new Map<string, number>();
    for (let seed = 0; seed < 6000; seed++) {
      const names = runsOf(workedExample("fifo", "random", seed)).map((r) => r.name).join("");
      counts.set(names, (counts.get(names) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(["ABC", "ACB", "BAC", "BCA", "CAB", "CBA"]);
    for (const n of counts.values()) expect(Math.abs(n - 1000)).toBeLessThan(200);
  });

  it("random primary takes every order inside a sub-queue, roughly uniformly", () => {
    const counts = new Map<string, number>();
    for (let seed = 0; seed < 6000; seed++) {
      const a = runsOf(workedExample("random", "fifo", seed))[0]!;
      const key = a.items.join(" ");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(6); // 3! orders of A
    for (const n of counts.values()) expect(Math.abs(n - 1000)).toBeLessThan(200);
  });

  it("random/random: every order that respects one sub-queue at a time occurs, and no other", () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 8000; seed++) {
      const order = workedExample("random", "random", seed);
      runsOf(order);
      seen.add(order.join(" "));
    }
    expect(seen.size).toBe(3 * 2 * (6 * 6 * 2)); // sub-queue orders × orders inside A, B, C
  });
});

describe("closing by age", () => {
  it("holds a partial sub-queue until maxAgeMs has passed since its first message (lifo primary: the order is not known before)", () => {
    const { s, clock, receive } = setup({ primary: "lifo", maxCount: 3, maxAgeMs: 100 });
    receive(m(1), 10);
    receive(m(2), 10);
    expect(s.nextDeadlineMs()).toBe(100);
    for (const t of [20, 50, 99]) {
      clock.t = t;
      expect(s.next()).toBeUndefined();
    }
    expect(s.stats()).toEqual({ held: 2, draining: 0, closedSubQueues: 0, open: 2, streaming: false });
    clock.t = 100;
    expect(drain(s)).toEqual(m(2, 1));
    expect(s.nextDeadlineMs()).toBeUndefined();
    expect(s.size).toBe(0);
  });

  it.each(SCHEMES)("fifo primary, secondary %s, nothing ahead: each item goes out on arrival, and the sub-queue still closes by count", (secondary) => {
    const { s, clock, receive } = setup({ primary: "fifo", secondary, maxCount: 3, maxAgeMs: 100 });
    const out: string[] = [];
    for (const item of m(1, 2, 3, 4, 5)) {
      receive([item], 10);
      out.push(...drain(s));
    }
    expect(out).toEqual(m(1, 2, 3, 4, 5));
    expect(s.stats()).toMatchObject({ held: 0, streaming: true });
    // m4 and m5 are the second sub-queue: it has room for one more, until its deadline.
    expect(s.nextDeadlineMs()).toBeUndefined(); // nothing left to hand out: no timer needed
    clock.t = 1000;
    receive(m(6));
    expect(drain(s)).toEqual(m(6));
  });

  it("a streaming sub-queue that closes while items wait hands them on in order; closed sub-queues ahead stop streaming", () => {
    const { s, clock, receive } = setup({ primary: "fifo", secondary: "lifo", maxCount: 3, maxAgeMs: 100 });
    receive(m(1));
    expect(s.next()).toBe("m1"); // streaming
    receive(m(2, 3, 4, 5, 6, 7)); // A=[m1,m2,m3] full: its rest m2,m3 drain; B=[m4,m5,m6]; C=[m7] open
    expect(s.stats()).toMatchObject({ draining: 2, closedSubQueues: 1, open: 1, streaming: false });
    // A finishes, lifo picks B (the only closed one), and then C, open with nothing ahead, streams.
    expect(drain(s)).toEqual(m(2, 3, 4, 5, 6, 7));
    expect(s.stats()).toMatchObject({ streaming: true, open: 0 });
    clock.t += 200;
    receive(m(8));
    expect(drain(s)).toEqual(m(8));
  });

  it("random or lifo primaries never stream", () => {
    for (const primary of ["lifo", "random"] as const) {
      const { s, receive } = setup({ primary, maxCount: 3, maxAgeMs: 100 });
      receive(m(1, 2));
      expect(s.next()).toBeUndefined();
      expect(s.stats().streaming).toBe(false);
    }
  });

  it("an item received at or after the open sub-queue's deadline starts a new one", () => {
    const { s, clock } = setup({ primary: "fifo", secondary: "lifo", maxCount: 10, maxAgeMs: 100 });
    s.add("m1", 0);
    s.add("m2", 99);
    s.add("m3", 100); // A=[m1,m2] closes, B=[m3] opens
    expect(s.stats()).toMatchObject({ closedSubQueues: 1, open: 1 });
    expect(s.nextDeadlineMs()).toBe(200);
    clock.t = 200;
    expect(drain(s)).toEqual(m(3, 1, 2));
  });

  it("groups by received time even when the clock has moved on (paused or redelivered)", () => {
    const { s, clock } = setup({ primary: "lifo", secondary: "fifo", maxAgeMs: 50 });
    clock.t = 10_000;
    for (const [i, t] of [0, 20, 40, 60, 80, 100, 120].entries()) s.add(`m${i + 1}`, t);
    // windows: [0,50) = m1 m2 m3, [60,110) = m4 m5 m6, [120,170) = m7
    expect(drain(s)).toEqual(m(3, 2, 1, 6, 5, 4, 7));
  });
});

describe("closing by count", () => {
  it("dispatches a full sub-queue at once, without waiting for its age", () => {
    const { s, receive } = setup({ primary: "lifo", maxCount: 3, maxAgeMs: 10_000 });
    receive(m(1, 2, 3, 4));
    expect(drain(s)).toEqual(m(3, 2, 1));
    expect(s.stats()).toEqual({ held: 1, draining: 0, closedSubQueues: 0, open: 1, streaming: false });
  });

  it("maxCount only: a partial sub-queue closes after the default 100 ms", () => {
    const rules = effectiveRules({ primary: "lifo", secondary: "fifo", maxCount: 5 }, 0, () => 0);
    expect(rules.maxAgeMs).toBe(100);
    const { s, clock, receive } = setup(rules);
    receive(m(1, 2, 3, 4, 5, 6, 7));
    expect(drain(s)).toEqual(m(5, 4, 3, 2, 1));
    clock.t = 104;
    expect(s.next()).toBeUndefined(); // m6 received at 5: deadline 105
    clock.t = 105;
    expect(drain(s)).toEqual(m(7, 6));
  });

  it("maxAgeMs only: pure time windows, however many messages", () => {
    const rules = effectiveRules({ primary: "fifo", secondary: "lifo", maxAgeMs: 1000 }, 0, () => 0);
    expect(rules.maxCount).toBeUndefined();
    const { s, clock } = setup(rules);
    const first = Array.from({ length: 5000 }, (_, i) => `a${i}`);
    const second = Array.from({ length: 3000 }, (_, i) => `b${i}`);
    first.forEach((item, i) => s.add(item, i / 10)); // 0 … 499.9 ms
    second.forEach((item, i) => s.add(item, 1000 + i / 10));
    expect(s.stats()).toMatchObject({ closedSubQueues: 1, open: 3000 });
    clock.t = 2000;
    expect(drain(s)).toEqual([...second, ...first]);
  });
});

describe("draining", () => {
  it("messages arriving mid-drain form new sub-queues and never join the one being drained", () => {
    for (const primary of SCHEMES) {
      const { s, clock, receive } = setup({ primary, secondary: "lifo", maxCount: 3, maxAgeMs: 100 });
      receive(m(1, 2, 3));
      const out = [s.next()!];
      receive(m(4, 5, 6, 7)); // B=[m4,m5,m6] closed, the newest; C=[m7] open
      out.push(s.next()!, s.next()!);
      expect([...out].sort()).toEqual(m(1, 2, 3));
      expect(s.stats()).toEqual({ held: 4, draining: 0, closedSubQueues: 1, open: 1, streaming: false });
      clock.t += 100;
      expect(drain(s).slice(0, 1)).toEqual(m(7)); // secondary lifo: C, closed by age, then B
    }
  });

  it("returns undefined when empty, and keeps working after", () => {
    const { s, clock, receive } = setup({ maxCount: 2 });
    expect(s.next()).toBeUndefined();
    expect(s.nextDeadlineMs()).toBeUndefined();
    receive(m(1));
    clock.t += 100;
    expect(drain(s)).toEqual(m(1));
    receive(m(2, 3));
    expect(drain(s)).toEqual(m(2, 3));
  });

  it("refuses a received time that is not a finite number", () => {
    const { s } = setup({ maxCount: 2 });
    expect(() => s.add("x", Number.NaN)).toThrow(RangeError);
    expect(s.size).toBe(0);
  });
});

describe("rule changes", () => {
  it("the next sub-queues follow the new schemes", () => {
    const { s, clock, receive, setRules } = setup({ primary: "fifo", secondary: "fifo", maxCount: 3 });
    receive(m(1, 2, 3, 4, 5, 6, 7, 8, 9));
    expect([s.next(), s.next(), s.next()]).toEqual(m(1, 2, 3));
    setRules({ primary: "lifo", secondary: "lifo", maxCount: 3 });
    clock.t += 100;
    expect(drain(s)).toEqual(m(9, 8, 7, 6, 5, 4));
  });

  it("the sub-queue being drained keeps the primary it started with", () => {
    const { s, receive, setRules } = setup({ primary: "fifo", maxCount: 4 });
    receive(m(1, 2, 3, 4, 5, 6, 7, 8));
    expect(s.next()).toBe("m1");
    setRules({ primary: "lifo", maxCount: 4 });
    expect(drain(s)).toEqual(m(2, 3, 4, 8, 7, 6, 5));
  });

  it("a smaller maxCount closes the open sub-queue at the next decision, as it is", () => {
    const { s, receive, setRules } = setup({ primary: "lifo", maxCount: 10, maxAgeMs: 10_000 });
    receive(m(1, 2, 3, 4));
    expect(s.next()).toBeUndefined();
    setRules({ primary: "lifo", maxCount: 3, maxAgeMs: 10_000 });
    expect(drain(s)).toEqual(m(4, 3, 2, 1));
  });

  it("a shorter maxAgeMs moves the open sub-queue's deadline", () => {
    const { s, clock, receive, setRules } = setup({ primary: "lifo", maxAgeMs: 1000 });
    receive(m(1, 2));
    clock.t = 200;
    expect(s.nextDeadlineMs()).toBe(1000);
    expect(s.next()).toBeUndefined();
    setRules({ primary: "lifo", maxAgeMs: 100 });
    expect(s.nextDeadlineMs()).toBe(100);
    expect(drain(s)).toEqual(m(2, 1));
  });
});

describe("properties over random inputs", () => {
  /** Random arrivals, clock steps, rule changes and retrievals; then everything is drained. */
  function run(trial: number) {
    const rng = seededRandom(trial);
    const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rng() * xs.length)]!;
    const randomRules = (): Partial<EffectiveRules> => ({
      primary: pick(SCHEMES),
      secondary: pick(SCHEMES),
      maxCount: pick([undefined, 1, 2, 3, 7]),
      maxAgeMs: pick([1, 10, 100]),
    });
    const { s, clock, setRules } = setup(randomRules(), trial);
    const added: string[] = [];
    const out: string[] = [];
    let drainStartedAt = 0; // items added before the current drain began
    let streamed = false; // the current drain began as a streaming open sub-queue
    const take = () => {
      const before = s.stats();
      const item = s.next();
      if (item === undefined) return;
      if (before.draining === 0 && !before.streaming) streamed = false;
      if (before.streaming || s.stats().streaming) streamed = true;
      // A streaming sub-queue takes items as they arrive (and what it has left when it closes
      // goes on); any other drain is of a closed sub-queue: nothing added after it began is in it.
      if (before.draining === 0 || streamed) drainStartedAt = added.length;
      expect(added.indexOf(item)).toBeLessThan(drainStartedAt);
      out.push(item);
    };
    const steps = 50 + Math.floor(rng() * 300);
    for (let i = 0; i < steps; i++) {
      const r = rng();
      if (r < 0.5) {
        const item = `t${trial}-${added.length}`;
        added.push(item);
        s.add(item, clock.t);
      } else if (r < 0.8) take();
      else if (r < 0.97) clock.t += Math.floor(rng() * 30);
      else setRules(randomRules());
      expect(s.size).toBe(added.length - out.length);
    }
    clock.t += 1000;
    for (let item = s.next(); item !== undefined; item = s.next()) out.push(item);
    return { added, out };
  }

  it("every added item is dispatched exactly once: nothing lost, nothing duplicated", () => {
    for (let trial = 0; trial < 300; trial++) {
      const { added, out } = run(trial);
      expect(out.length).toBe(added.length);
      expect(new Set(out).size).toBe(out.length);
      expect([...out].sort()).toEqual([...added].sort());
    }
  });

  it("with count limits only, each drain is exactly one consecutive chunk of received items", () => {
    for (let trial = 0; trial < 200; trial++) {
      const rng = seededRandom(1000 + trial);
      const maxCount = 1 + Math.floor(rng() * 6);
      const [primary, secondary] = PAIRS[trial % PAIRS.length]!;
      const { s, receive } = setup({ primary, secondary, maxCount, maxAgeMs: 1e12 }, trial);
      const length = 1 + Math.floor(rng() * 60);
      const items = Array.from({ length }, (_, i) => `i${String(i).padStart(3, "0")}`);
      let received = 0;
      const chunks: string[][] = [];
      const order: string[] = [];
      while (received < items.length || s.size > (s.stats().streaming ? 0 : s.stats().open)) {
        if (received < items.length && rng() < 0.6) receive([items[received++]!]);
        const item = s.next();
        if (item !== undefined) order.push(item);
      }
      // Runs of one sub-queue (consecutive count-cut chunks) in the order handed out.
      const chunkOf = (item: string) => Math.floor(items.indexOf(item) / maxCount);
      for (const item of order) {
        if (chunks.length === 0 || chunkOf(chunks.at(-1)![0]!) !== chunkOf(item)) chunks.push([]);
        chunks.at(-1)!.push(item);
      }
      for (const chunk of chunks) {
        const sorted = [...chunk].sort();
        const start = items.indexOf(sorted[0]!);
        expect(start % maxCount).toBe(0);
        // Only the last, still open sub-queue may be partial: it streamed (fifo primary).
        const whole = start + maxCount <= items.length;
        expect(sorted).toEqual(items.slice(start, start + (whole ? maxCount : sorted.length)));
        if (!whole) expect(primary).toBe("fifo");
      }
      expect(chunks.flat().length).toBeGreaterThanOrEqual(Math.floor(items.length / maxCount) * maxCount);
    }
  });

  it("fifo/fifo under any interleaving dispatches in received order", () => {
    for (let trial = 0; trial < 100; trial++) {
      const rng = seededRandom(5000 + trial);
      const { s, clock } = setup({ maxCount: 1 + Math.floor(rng() * 5), maxAgeMs: 20 }, trial);
      const added: string[] = [];
      const out: string[] = [];
      for (let i = 0; i < 200; i++) {
        if (rng() < 0.5) {
          const item = `x${added.length}`;
          added.push(item);
          s.add(item, clock.t);
        } else {
          const item = s.next();
          if (item !== undefined) out.push(item);
        }
        clock.t += Math.floor(rng() * 5);
      }
      clock.t += 100;
      out.push(...drain(s));
      expect(out).toEqual(added);
    }
  });
});
