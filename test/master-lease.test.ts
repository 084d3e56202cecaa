/**
 * The master lease against a real nats-server: racing candidates never both hold it, each epoch
 * has exactly one holder, a failed renewal stops master work at once, and epochs only grow.
 * Self-fencing is tested without NATS: a fake KV whose requests can be held, an injected clock
 * and injected timers.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../runtime/log.js";
import {
  leaseRequestTimeoutMs,
  MasterLease,
  selfFenceAfterMs,
  type LeaseValue,
  type MasterLeaseOptions,
} from "../runtime/supervisor/master-lease.js";
import { startTestNats, waitFor } from "./helpers/nats.js";
import { MASTER_KEY } from "../runtime/names.js";

let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.url });
});

// A holder left by a test would otherwise fence itself on its real timer during the next one.
const made: MasterLease[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((l) => l.release()));
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

interface Candidate {
  name: string;
  lease: MasterLease;
  gains: number[];
  losses: number[];
}

const log = createLogger("test").child("lease");

function candidates(kv: KV, count: number, opts: { preset?: string; sameRank?: boolean; intervalMs?: number; timeoutMs?: number } = {}) {
  const order = Array.from({ length: count }, (_, i) => `c${i}`);
  const out: Candidate[] = [];
  const holders = () => out.filter((c) => c.lease.isMaster()).map((c) => c.name);
  let overlap: string[] | undefined;
  for (const name of order) {
    const c: Candidate = { name, lease: undefined as unknown as MasterLease, gains: [], losses: [] };
    c.lease = new MasterLease({
      kv,
      node: name,
      incarnation: `${name}-inc`,
      preset: opts.preset === name,
      // sameRank: every candidate believes it is first in line, so they really race.
      order: opts.sameRank ? [name, ...order.filter((n) => n !== name)] : order,
      intervalMs: opts.intervalMs ?? 100,
      timeoutMs: opts.timeoutMs ?? 400,
      isAlive: () => true,
      now: () => performance.now(),
      log,
      onGain: (epoch) => {
        c.gains.push(epoch);
        const h = holders();
        if (h.length > 1) overlap = h;
      },
      onLose: (epoch) => c.losses.push(epoch),
    });
    made.push(c.lease);
    out.push(c);
  }
  return { all: out, holders, overlap: () => overlap };
}

async function freshBucket(name: string): Promise<KV> {
  return new Kvm(nc).create(name, { history: 1 });
}

describe("master lease", () => {
  it("the preset creates the lease at epoch 1; the others stay slaves while it renews", async () => {
    const kv = await freshBucket("lease_preset");
    const { all, holders } = candidates(kv, 3, { preset: "c1" });
    for (let round = 0; round < 10; round++) await Promise.all(all.map((c) => c.lease.tick()));
    expect(holders()).toEqual(["c1"]);
    expect(all[1]!.gains).toEqual([1]);
    const value = (await kv.get(MASTER_KEY))!.json<LeaseValue>();
    expect(value).toMatchObject({ node: "c1", epoch: 1 });
  });

  it("racing candidates: exactly one wins each epoch, never two holders at once", async () => {
    const kv = await freshBucket("lease_race");
    const { all, holders, overlap } = candidates(kv, 5, { sameRank: true });
    // No preset: all wait out the absent lease, then race with create().
    const epochsSeen: number[] = [];
    for (let round = 0; round < 6; round++) {
      await waitFor(
        async () => {
          await Promise.all(all.map((c) => c.lease.tick()));
          return holders().length === 1;
        },
        { timeoutMs: 5000, intervalMs: 20, what: `a single holder in round ${round}` },
      );
      const holder = all.find((c) => c.lease.isMaster())!;
      epochsSeen.push(holder.lease.epoch()!);
      // The holder releases; the rest race again for epoch + 1 (released: no wait).
      await holder.lease.release();
      expect(holders()).toEqual([]);
    }
    expect(overlap()).toBeUndefined();
    // Epochs strictly increase by one per change of holder, each won by one candidate only.
    expect(epochsSeen).toEqual(epochsSeen.map((_, i) => epochsSeen[0]! + i));
    const allGains = all.flatMap((c) => c.gains).sort((a, b) => a - b);
    expect(allGains).toEqual([...new Set(allGains)]);
  });

  it("a holder whose renewal fails stops master work at once", async () => {
    const kv = await freshBucket("lease_steal");
    const { all } = candidates(kv, 2, { preset: "c0" });
    await all[0]!.lease.tick();
    expect(all[0]!.lease.isMaster()).toBe(true);
    // Someone else writes the key (as a successor would): the next renewal's CAS fails.
    const e = await kv.get(MASTER_KEY);
    await kv.update(MASTER_KEY, JSON.stringify({ node: "other", epoch: 2, incarnation: "x" }), e!.revision);
    await all[0]!.lease.tick();
    expect(all[0]!.lease.isMaster()).toBe(false);
    expect(all[0]!.losses).toEqual([1]);
  });

  it("a holder that stops renewing is replaced after the timeout with epoch + 1", async () => {
    const kv = await freshBucket("lease_expire");
    const { all } = candidates(kv, 3, { preset: "c0", intervalMs: 100, timeoutMs: 400 });
    await all[0]!.lease.tick();
    expect(all[0]!.lease.epoch()).toBe(1);
    const start = performance.now();
    // c0 is "dead": it never ticks again. c1 (first in order) must take over.
    await waitFor(
      async () => {
        await Promise.all([all[1]!.lease.tick(), all[2]!.lease.tick()]);
        return all[1]!.lease.isMaster() || all[2]!.lease.isMaster();
      },
      { timeoutMs: 5000, intervalMs: 100, what: "a successor" },
    );
    expect(performance.now() - start).toBeGreaterThanOrEqual(400);
    expect(all[1]!.lease.isMaster()).toBe(true);
    expect(all[2]!.lease.isMaster()).toBe(false);
    expect(all[1]!.lease.epoch()).toBe(2);
    // The old holder, ticking again, finds the lease taken and steps down.
    await all[0]!.lease.tick();
    expect(all[0]!.lease.isMaster()).toBe(false);
  });
});

/** The one key the lease uses, in memory; `holding` queues requests until `release()` (or forever). */
class FakeKv {
  private value: string | undefined;
  private revision = 0;
  holding = false;
  /** The next write is applied, but answered with a timeout (as a slow server's can be). */
  timeOutAfterWrite = false;
  private held: (() => void)[] = [];

  get(): Promise<KvEntry | null> {
    return this.answer(() => {
      if (this.value === undefined) return null;
      const data = this.value;
      return { revision: this.revision, operation: "PUT", json: () => JSON.parse(data) } as unknown as KvEntry;
    });
  }

  create(_key: string, data: string): Promise<number> {
    return this.answer(() => {
      if (this.value !== undefined) throw new Error("wrong last sequence: key exists");
      return this.write(data);
    });
  }

  update(_key: string, data: string, revision: number): Promise<number> {
    return this.answer(() => {
      // What the server answers a KV update whose revision moved.
      if (revision !== this.revision) {
        throw new JetStreamApiError({ code: 400, err_code: JetStreamApiCodes.StreamWrongLastSequence, description: `wrong last sequence: ${this.revision}` });
      }
      return this.write(data);
    });
  }

  /** Answers the requests held so far. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const run of held) run();
  }

  private write(data: string): number {
    this.value = data;
    ++this.revision;
    if (this.timeOutAfterWrite) {
      this.timeOutAfterWrite = false;
      throw new Error("TIMEOUT");
    }
    return this.revision;
  }

  private answer<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = () => {
        try {
          resolve(op());
        } catch (err) {
          reject(err);
        }
      };
      if (this.holding) this.held.push(run);
      else run();
    });
  }
}

/** A monotonic clock and timers that move only when told to. */
class FakeTime {
  t = 0;
  private timers = new Map<number, { at: number; fire: () => void }>();
  private nextId = 1;

  readonly now = () => this.t;
  readonly setTimer = (fire: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fire });
    return id;
  };
  readonly clearTimer = (id: unknown) => void this.timers.delete(id as number);

  pending(): number {
    return this.timers.size;
  }

  /** Moves the clock to `to`, firing the timers due on the way in order. */
  advanceTo(to: number): void {
    for (;;) {
      const due = [...this.timers].filter(([, tm]) => tm.at <= to).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fire();
    }
    this.t = to;
  }
}

/** Lets promise callbacks that are ready run (no time passes on the fake clock). */
const settle = () => new Promise((r) => setImmediate(r));

const INTERVAL = 200;
const TIMEOUT = 1000;
const FENCE = selfFenceAfterMs(INTERVAL, TIMEOUT);

function fencedHolder() {
  const kv = new FakeKv();
  const time = new FakeTime();
  const gains: number[] = [];
  const losses: string[] = [];
  const opts: MasterLeaseOptions = {
    kv: kv as unknown as KV,
    node: "n1",
    incarnation: "n1-inc",
    preset: true,
    order: ["n1", "n2"],
    intervalMs: INTERVAL,
    timeoutMs: TIMEOUT,
    isAlive: () => true,
    now: time.now,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    log,
    onGain: (epoch) => gains.push(epoch),
    onLose: (_epoch, reason) => losses.push(reason),
  };
  return { kv, time, gains, losses, lease: new MasterLease(opts) };
}

describe("self-fencing", () => {
  it("the window is timeoutMs − intervalMs less a 10 % margin", () => {
    expect(FENCE).toBe(720);
    expect(selfFenceAfterMs(500, 2000)).toBe(1350);
  });

  it("lease requests time out within the window: min(intervalMs, (timeoutMs − intervalMs) / 2), at least 250 ms", () => {
    expect(leaseRequestTimeoutMs(200, 1000)).toBe(250);
    expect(leaseRequestTimeoutMs(500, 2000)).toBe(500);
    expect(leaseRequestTimeoutMs(1000, 2000)).toBe(500);
    expect(leaseRequestTimeoutMs(50, 100)).toBe(250);
  });

  it("a holder whose KV requests never settle steps down when its own timer fires, not later", async () => {
    const { kv, time, lease, losses } = fencedHolder();
    await lease.tick();
    expect(lease.isMaster()).toBe(true);
    time.advanceTo(200);
    await lease.tick();
    // Cut off: from now on nothing answers, and the protocol loop is stuck in its read.
    kv.holding = true;
    time.advanceTo(400);
    void lease.tick();
    await settle();
    for (const t of [600, 800]) {
      time.advanceTo(t);
      await lease.tick(); // skipped: the previous step still awaits
    }
    time.advanceTo(200 + FENCE - 1);
    expect(lease.isMaster()).toBe(true);
    time.advanceTo(200 + FENCE);
    expect(lease.isMaster()).toBe(false);
    expect(losses).toEqual([`lease not renewed for ${FENCE} ms`]);
  });

  it("a renewal that succeeds after the timer fired does not make it master again", async () => {
    const { kv, time, lease, gains, losses } = fencedHolder();
    await lease.tick();
    time.advanceTo(200);
    kv.holding = true;
    const stuck = lease.tick();
    kv.release(); // the read answers; the renewal's write is held
    await settle();
    time.advanceTo(FENCE);
    expect(lease.isMaster()).toBe(false);
    kv.holding = false;
    kv.release(); // the write succeeds, late
    await stuck;
    expect(lease.isMaster()).toBe(false);
    expect(time.pending()).toBe(0);
    // The next step finds its own value and leaves it to expire like anyone's.
    time.advanceTo(FENCE + INTERVAL);
    await lease.tick();
    expect(lease.isMaster()).toBe(false);
    expect(gains).toEqual([1]);
    expect(losses).toHaveLength(1);
  });

  it("a take applied by the server but answered with a timeout is adopted on the next read, inside the window", async () => {
    const { kv, time, lease, gains } = fencedHolder();
    kv.timeOutAfterWrite = true;
    await lease.tick();
    expect(lease.isMaster()).toBe(false);
    time.advanceTo(INTERVAL);
    await lease.tick();
    expect(lease.isMaster()).toBe(true);
    expect(gains).toEqual([1]);
    // Held as from when the take began: the fence counts from 0, not from the read at 200.
    time.advanceTo(FENCE - 1);
    expect(lease.isMaster()).toBe(true);
    kv.holding = true;
    time.advanceTo(FENCE);
    expect(lease.isMaster()).toBe(false);
  });

  it("such a take is not adopted once its window has passed: it expires like anyone's", async () => {
    const { kv, time, lease, gains } = fencedHolder();
    kv.timeOutAfterWrite = true;
    await lease.tick();
    time.advanceTo(FENCE);
    await lease.tick();
    expect(lease.isMaster()).toBe(false);
    expect(gains).toEqual([]);
  });

  it("renewals keep pushing the deadline back", async () => {
    const { time, lease, losses } = fencedHolder();
    await lease.tick();
    for (let t = INTERVAL; t <= 5000; t += INTERVAL) {
      time.advanceTo(t);
      await lease.tick();
      expect(lease.isMaster()).toBe(true);
    }
    expect(losses).toEqual([]);
    // The last renewal started at 5000: the deadline is counted from there.
    time.advanceTo(5000 + FENCE - 1);
    expect(lease.isMaster()).toBe(true);
    time.advanceTo(5000 + FENCE);
    expect(lease.isMaster()).toBe(false);
  });

  it("losing the lease or releasing it disarms the timer", async () => {
    const { time, lease } = fencedHolder();
    await lease.tick();
    expect(time.pending()).toBe(1);
    await lease.release();
    expect(lease.isMaster()).toBe(false);
    expect(time.pending()).toBe(0);
  });
});

describe("takeover order", () => {
  it("puts nodes that can run collectors first when collectors are configured", async () => {
    const { takeoverOrder } = await import("../runtime/supervisor/supervisor.js");
    const { parseConfig } = await import("../runtime/config/index.js");
    const base = {
      cluster: "t",
      nats: { servers: ["nats://127.0.0.1:1"] },
      nodes: [
        { name: "a", actors: { collector: 0 } },
        { name: "b", actors: { collector: 1 } },
        { name: "c", actors: { collector: 0 } },
        { name: "d", actors: { collector: 2 } },
      ],
      topics: { t: { channel: "nats" } },
    };
    expect(takeoverOrder(parseConfig(base, "."))).toEqual(["a", "b", "c", "d"]);
    const withCollector = { ...base, collectors: [{ name: "h", kind: "http", url: "http://127.0.0.1:1/feed", topic: "t" }] };
    expect(takeoverOrder(parseConfig(withCollector, "."))).toEqual(["b", "d", "a", "c"]);
  });
});
