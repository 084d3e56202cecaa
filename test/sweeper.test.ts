/**
 * The master's sweeper, second duty: a consumer that does not see messages its stream holds
 * (nats-server 2.9.10 on a replicated stream after leader changes, see runtime/pipeline/sweeper.ts).
 * The server bug cannot be summoned on demand: the decision is tested as a pure function, and on a
 * real three-server cluster that a healthy consumer is never stepped down and that a step-down
 * moves the leader.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { systemClock } from "../runtime/clock.js";
import { parseConfig } from "../runtime/config/load.js";
import { createLogger } from "../runtime/log.js";
import { stepDownConsumer, UnknownTopicSweeper, unseenVerdict } from "../runtime/pipeline/sweeper.js";
import { startTempNatsCluster } from "../runtime/testing/temp-nats-cluster.js";
import { waitFor } from "./helpers/nats.js";

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
