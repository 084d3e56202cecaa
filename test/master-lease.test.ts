/**
 * The master lease against a real nats-server: racing candidates never both hold it, each epoch
 * has exactly one holder, a failed renewal stops master work at once, and epochs only grow.
 */
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../runtime/log.js";
import { MASTER_KEY } from "../runtime/subjects.js";
import { MasterLease, type LeaseValue } from "../runtime/supervisor/master-lease.js";
import { startTestNats, waitFor } from "./helpers/nats.js";

let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.url });
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
