/**
 * The master's sweeper, second duty: acked messages a work-queue stream kept (nats-server 2.9.10
 * on a replicated stream after a leader change, see runtime/pipeline/sweeper.ts). The server bug
 * cannot be summoned on demand, so the state it leaves is built on a real server: streams with
 * Herald's names and limits retention (which keeps acked messages, as the bug does), the topic's
 * consumer with an ack floor below some stored messages and above others.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../runtime/clock.js";
import { parseConfig } from "../runtime/config/load.js";
import { createLogger } from "../runtime/log.js";
import { stepDownConsumer, UnknownTopicSweeper, unseenVerdict } from "../runtime/pipeline/sweeper.js";
import { startTempNatsCluster } from "../runtime/testing/temp-nats-cluster.js";
import { startTestNats, waitFor, type TestNats } from "./helpers/nats.js";

let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

async function storedSeqs(stream: string, subject: string): Promise<number[]> {
  const seqs: number[] = [];
  for (let seq = 0; ; ) {
    const m = await jsm.streams.getMessage(stream, { next_by_subj: subject, seq: seq + 1 } as never).catch(() => null);
    if (m === null) return seqs;
    seqs.push(m.seq);
    seq = m.seq;
  }
}

describe("sweeper: acked messages a stream kept", () => {
  it("purges, per topic, what is at or below the consumer's ack floor, and nothing that is still owed", async () => {
    for (const [name, subjects] of [["HERALD_QUEUE", "herald.in.>"], ["HERALD_EXCEPTIONS", "herald.exc.>"]] as const) {
      await jsm.streams.add({ name, subjects: [subjects], retention: RetentionPolicy.Limits, storage: StorageType.Memory });
    }
    await jsm.consumers.add("HERALD_QUEUE", { durable_name: "subqueue-demo", filter_subject: "herald.in.demo", ack_policy: AckPolicy.Explicit });
    await jsm.consumers.add("HERALD_EXCEPTIONS", { durable_name: "retry-demo", filter_subject: "herald.exc.demo", ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    // Interleaved with another topic's messages, which have no consumer here and must stay.
    for (let i = 1; i <= 6; i++) {
      await js.publish("herald.in.demo", `d${i}`);
      await js.publish("herald.in.other", `o${i}`);
    }
    await js.publish("herald.exc.demo", "e1");
    await js.publish("herald.exc.demo", "e2");

    // Five delivered: 1, 2, 3 and 5 acked, 4 still in flight, 6 never delivered.
    const queue = await js.consumers.get("HERALD_QUEUE", "subqueue-demo");
    const delivered = [];
    for await (const m of await queue.fetch({ max_messages: 5, expires: 2000 })) delivered.push(m);
    expect(delivered.map((m) => m.string())).toEqual(["d1", "d2", "d3", "d4", "d5"]);
    for (const m of delivered) if (m.string() !== "d4") await m.ackAck();
    const retry = await js.consumers.get("HERALD_EXCEPTIONS", "retry-demo");
    for await (const m of await retry.fetch({ max_messages: 2, expires: 2000 })) await m.ackAck();

    const config = parseConfig({ cluster: "sweep", nats: { servers: [nats.url] }, nodes: [{ name: "a" }], topics: { demo: { channel: "nats" }, other: { channel: "nats" } } }, ".");
    const sweeper = new UnknownTopicSweeper(nc, config, systemClock, createLogger("test"));
    expect(await sweeper.purgeRetained()).toBe(3 + 2);

    const demo = await storedSeqs("HERALD_QUEUE", "herald.in.demo");
    // d4 (in flight), d5 (acked, but above the floor: left for the next pass) and d6 (owed) stay.
    expect((await Promise.all(demo.map((seq) => jsm.streams.getMessage("HERALD_QUEUE", { seq })))).map((m) => m!.string())).toEqual(["d4", "d5", "d6"]);
    expect(await storedSeqs("HERALD_QUEUE", "herald.in.other")).toHaveLength(6);
    expect(await storedSeqs("HERALD_EXCEPTIONS", "herald.exc.demo")).toEqual([]);
    // The message in flight is still the consumer's: its ack is taken.
    await delivered[3]!.ackAck();
    // Stored now: d5, d6 (2); owed: d6 (1). The floor moved to d5: it goes, d6 stays.
    expect(await sweeper.purgeRetained()).toBe(2);
    expect(await storedSeqs("HERALD_QUEUE", "herald.in.demo")).toHaveLength(1);
    // Nothing kept any more: no purge at all.
    expect(await sweeper.purgeRetained()).toBe(0);
  });
});

describe("sweeper: a consumer that does not see its stream's messages", () => {
  it("steps down only when the same unseen message is found twice in a row", () => {
    expect(unseenVerdict(undefined, undefined)).toEqual({ stepDown: false, remember: undefined });
    // First sighting: perhaps only a message published between the two reads.
    expect(unseenVerdict(undefined, 42)).toEqual({ stepDown: false, remember: 42 });
    // Still unseen five seconds later: the consumer is behind its stream.
    expect(unseenVerdict(42, 42)).toEqual({ stepDown: true, remember: undefined });
    // It moved on, and another message is new: look again next time.
    expect(unseenVerdict(42, 57)).toEqual({ stepDown: false, remember: 57 });
    expect(unseenVerdict(42, undefined)).toEqual({ stepDown: false, remember: undefined });
  });

  it("on a real three-server cluster: a healthy consumer is never stepped down, and a step-down moves its leader", async () => {
    const cluster = await startTempNatsCluster({ size: 3 });
    const cnc = await connect({ servers: cluster.urls });
    try {
      const cjsm = await jetstreamManager(cnc);
      await cjsm.streams.add({ name: "HERALD_QUEUE", subjects: ["herald.in.>"], retention: RetentionPolicy.Workqueue, num_replicas: 3 });
      await cjsm.streams.add({ name: "HERALD_EXCEPTIONS", subjects: ["herald.exc.>"], retention: RetentionPolicy.Workqueue, num_replicas: 3 });
      await cjsm.consumers.add("HERALD_QUEUE", { durable_name: "subqueue-demo", filter_subject: "herald.in.demo", ack_policy: AckPolicy.Explicit });
      const js = jetstream(cnc);
      for (let i = 0; i < 20; i++) await js.publish("herald.in.demo", `m${i}`);
      // Some in flight, unacked; the rest pending.
      const c = await js.consumers.get("HERALD_QUEUE", "subqueue-demo");
      for await (const m of await c.fetch({ max_messages: 5, expires: 2000 })) void m;

      const config = parseConfig({ cluster: "sweep", nats: { servers: cluster.urls }, nodes: [{ name: "a" }], topics: { demo: { channel: "nats" } } }, ".");
      const sweeper = new UnknownTopicSweeper(cnc, config, systemClock, createLogger("test"));
      expect(await sweeper.unstick()).toEqual([]);
      expect(await sweeper.unstick()).toEqual([]);

      const before = (await cjsm.consumers.info("HERALD_QUEUE", "subqueue-demo")).cluster?.leader;
      await stepDownConsumer(cnc, "HERALD_QUEUE", "subqueue-demo");
      const after = await waitFor(
        async () => {
          const l = (await cjsm.consumers.info("HERALD_QUEUE", "subqueue-demo").catch(() => undefined))?.cluster?.leader;
          return l !== undefined && l !== before ? l : undefined;
        },
        { timeoutMs: 15_000, what: "a new consumer leader" },
      );
      expect(after).not.toBe(before);
      await expect(stepDownConsumer(cnc, "HERALD_QUEUE", "no-such-consumer")).rejects.toThrow(/^consumer no-such-consumer of HERALD_QUEUE could not step down: consumer not found/);
    } finally {
      await cnc.close();
      await cluster.stop();
    }
  }, 60_000);
});
