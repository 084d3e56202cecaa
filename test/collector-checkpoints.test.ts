/**
 * Checkpoint fencing against a real nats-server. Two writers of different master epochs share one
 * checkpoint: the newer one claims it, after which every write of the older one fails and the older
 * one, on re-reading, finds itself fenced. Then the same with whole collector runners and the real
 * queue stream: a stale ex-master that wakes up mid-collection re-publishes a batch (the queue drops
 * it as duplicates) but cannot move the checkpoint its successor moved.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointConflictError, CheckpointStore, CheckpointUnreadableError, FencedError, type Checkpoint } from "../actors/collector/checkpoints.js";
import { CollectorRunner } from "../actors/collector/runner.js";
import type { Batch, CollectedItem, Source } from "../actors/collector/source.js";
import { parseConfig, type HeraldConfig } from "../runtime/config/index.js";
import { createLogger } from "../runtime/log.js";
import { QueueIO } from "../runtime/pipeline/queue-io.js";
import { ensurePipeline } from "../runtime/pipeline/setup.js";
import { startTestNats, waitFor } from "./helpers/nats.js";
import { checkpointKey, names } from "../runtime/names.js";

let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.url });
  kv = await new Kvm(nc).create(names("herald").collectorsBucket, { history: 5 });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

const store = (collector: string, epoch: number, node = `node-e${epoch}`) => new CheckpointStore({ kv, collector, epoch, node });
const stored = async (collector: string) => (await kv.get(checkpointKey(collector)))!.json<Checkpoint>();
const none = async () => null;
const totals = (collected: number) => ({ collected, duplicates: 0, deadLettered: 0 });

describe("checkpoint store", () => {
  it("a newer epoch claims the checkpoint; the older writer's next write fails and it is fenced", async () => {
    const a = store("claim", 1);
    expect(await a.acquire(none)).toEqual({ cursor: null, totals: totals(0) });
    await a.advance({ cursor: "c1", totals: totals(1) });
    expect(await stored("claim")).toMatchObject({ cursor: "c1", epoch: 1, collected: 1, node: "node-e1" });

    // The successor reads, and claims with its epoch before collecting anything.
    const b = store("claim", 2);
    expect(await b.acquire(none)).toEqual({ cursor: "c1", totals: totals(1) });
    expect(await stored("claim")).toMatchObject({ cursor: "c1", epoch: 2, node: "node-e2" });

    // The stale writer still holds the revision it read: its compare-and-set fails…
    await expect(a.advance({ cursor: "c-stale", totals: totals(2) })).rejects.toBeInstanceOf(CheckpointConflictError);
    // …and on re-reading it finds a newer epoch: fenced, nothing written.
    const fenced = await a.acquire(none).catch((e: unknown) => e);
    expect(fenced).toBeInstanceOf(FencedError);
    expect(fenced).toMatchObject({ mine: 1, stored: 2 });
    expect(await stored("claim")).toMatchObject({ cursor: "c1", epoch: 2 });

    // The successor goes on.
    await b.advance({ cursor: "c2", totals: totals(2) });
    expect(await stored("claim")).toMatchObject({ cursor: "c2", epoch: 2, collected: 2 });
  });

  it("a stale writer that read before the claim cannot write after it, even with nothing collected by the successor", async () => {
    const a = store("pause", 3);
    await a.acquire(none);
    await a.advance({ cursor: 10, totals: totals(10) });
    // a is "paused" here, holding revision r. The successor only claims; it collects nothing.
    await store("pause", 4).acquire(none);
    await expect(a.advance({ cursor: 20, totals: totals(20) })).rejects.toBeInstanceOf(CheckpointConflictError);
    await expect(a.acquire(none)).rejects.toBeInstanceOf(FencedError);
    expect(await stored("pause")).toMatchObject({ cursor: 10, epoch: 4 });
  });

  it("an older epoch arriving after a newer one is fenced at once; same-epoch re-reads resume", async () => {
    await store("order", 7).acquire(async () => "start");
    await expect(store("order", 6).acquire(none)).rejects.toBeInstanceOf(FencedError);
    // A restarted actor of the same master (same epoch) resumes where the checkpoint is.
    const again = store("order", 7);
    expect((await again.acquire(none)).cursor).toBe("start");
    await again.advance({ cursor: "next", totals: totals(1) });
    expect(await stored("order")).toMatchObject({ cursor: "next", epoch: 7 });
  });

  it("racing creators: exactly one creates the checkpoint", async () => {
    const results = await Promise.allSettled([store("race", 1).acquire(none), store("race", 1).acquire(none), store("race", 2).acquire(none)]);
    const won = results.filter((r) => r.status === "fulfilled").length;
    expect(won).toBeGreaterThanOrEqual(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(CheckpointConflictError);
    // Whoever lost reads again and claims or is fenced; epoch 2 ends up holding it.
    await store("race", 2).acquire(none);
    expect((await stored("race")).epoch).toBe(2);
  });

  it("a deleted checkpoint starts over from the initial cursor; an unreadable one is refused", async () => {
    const s = store("reset", 1);
    await s.acquire(none);
    await s.advance({ cursor: "far", totals: totals(5) });
    await kv.delete(checkpointKey("reset"));
    await expect(s.advance({ cursor: "farther", totals: totals(6) })).rejects.toBeInstanceOf(CheckpointConflictError);
    expect(await s.acquire(async () => "initial")).toEqual({ cursor: "initial", totals: totals(0) });

    await kv.put(checkpointKey("garbage"), "not json");
    await expect(store("garbage", 1).acquire(none)).rejects.toBeInstanceOf(CheckpointUnreadableError);
  });
});

/** An in-memory source: items are numbered, the cursor is the next index; fetches can be held. */
class ArraySource implements Source {
  readonly kind = "http" as const;
  readonly items: CollectedItem[] = [];
  private gate: Promise<void> | undefined;
  private release: (() => void) | undefined;
  /** Resolves when a fetch is waiting at the gate. */
  held: Promise<void> = Promise.resolve();
  private onHeld: (() => void) | undefined;

  add(n: number): void {
    for (let i = 0; i < n; i++) {
      const k = this.items.length;
      this.items.push({ id: `item-${k}`, submission: { topic: "t", data: { k } } });
    }
  }
  hold(): void {
    this.gate = new Promise((r) => (this.release = r));
    this.held = new Promise((r) => (this.onHeld = r));
  }
  open(): void {
    this.release?.();
    this.gate = undefined;
  }
  async initialCursor(): Promise<number> {
    return 0;
  }
  async fetch(cursor: unknown, limit: number): Promise<Batch> {
    const from = Number(cursor);
    const items = this.items.slice(from, from + limit);
    if (this.gate) {
      this.onHeld?.();
      await this.gate;
    }
    return { items, cursor: from + items.length, more: items.length === limit };
  }
  async close(): Promise<void> {}
}

describe("collector runners with fencing", () => {
  let config: HeraldConfig;
  beforeAll(async () => {
    config = parseConfig(
      {
        cluster: "fence",
        nats: { servers: [nats.url] },
        nodes: [{ name: "a" }],
        pipeline: { duplicateWindowMs: 600_000 },
        topics: { t: { channel: "nats" } },
        collectors: [{ name: "stale", kind: "http", url: "http://127.0.0.1:9/never", topic: "t", intervalMs: 50, batchSize: 100 }],
      },
      ".",
    );
    await ensurePipeline(nc, config, createLogger("test"));
  });

  const runner = (source: Source, epoch: number) =>
    new CollectorRunner({
      config: config.collectors[0]!,
      source,
      checkpoints: new CheckpointStore({ kv, collector: "stale", epoch, node: `n${epoch}` }),
      io: new QueueIO(jetstream(nc), { prefix: "herald", maxPayload: 1_048_576, isTopic: (t) => Object.hasOwn(config.topics, t) }),
      kv,
      enqueue: { source: "collector:stale", topics: config.topics, limits: config.limits, now: Date.now },
      node: `n${epoch}`,
      actor: "collector-0",
      log: createLogger(`test/e${epoch}`),
    });

  it("a stale ex-master woken mid-collection re-publishes (dropped as duplicates) but cannot move its successor's checkpoint", async () => {
    const queued = async () => (await (await jetstreamManager(nc)).streams.info(names("herald").queueStream)).state.messages;
    const old = new ArraySource();
    old.add(5);
    const a = runner(old, 1);
    a.start();
    await waitFor(async () => (await stored("stale")).cursor === 5, { timeoutMs: 5000, what: "epoch 1 checkpointing 5 items" });

    // The old master pauses in the middle of a collection: it has read its checkpoint and fetched.
    old.hold();
    old.add(5);
    await old.held;

    // The successor (same source data) claims and collects items 5..9.
    const fresh = new ArraySource();
    fresh.add(10);
    const b = runner(fresh, 2);
    b.start();
    await waitFor(async () => (await stored("stale")).cursor === 10, { timeoutMs: 5000, what: "epoch 2 checkpointing 10 items" });
    expect(await queued()).toBe(10);

    // The old master wakes: it publishes 5..9 again, the queue drops them, its CAS fails, it re-reads and is fenced.
    old.open();
    await waitFor(() => a.state === "fenced", { timeoutMs: 5000, what: "the old runner fenced" });
    expect(a.duplicates).toBe(5);
    expect(a.queued).toBe(5);
    expect(await queued()).toBe(10);
    expect(await stored("stale")).toMatchObject({ cursor: 10, epoch: 2, node: "n2", collected: 10, duplicates: 0 });

    // The successor is unaffected and keeps collecting.
    fresh.add(1);
    await waitFor(async () => (await stored("stale")).cursor === 11, { timeoutMs: 5000, what: "epoch 2 collecting on" });
    expect(await queued()).toBe(11);
    await Promise.all([a.stop(), b.stop()]);
  });
});
