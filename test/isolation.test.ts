/**
 * No one topic can hold up another: a paused topic with a backlog bigger than an actor's budget, a
 * topic whose webhook is slow, a topic with a huge backlog. Each case puts one topic in trouble and
 * checks that a message on another topic still goes straight through. Also: ids are unique per
 * topic, and junk publishes on unconfigured topics end as dead letters on one subject.
 */
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { decode, encode } from "../runtime/codec/index.js";
import type { DeadLetter } from "../runtime/pipeline/streams.js";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;
let server: Server | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server?.closeAllConnections();
  server = undefined;
});


/** One node, one actor of each pipeline kind, the given topics. */
async function oneNode(topics: Record<string, unknown>, pipeline: Record<string, unknown> = {}): Promise<TestCluster> {
  cluster = await TestCluster.start({
    nodes: 1,
    actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
    extra: { topics, pipeline },
  });
  cluster.startAll();
  await cluster.waitStatus("the node running", allRunning, 30_000);
  return cluster;
}

/** Ids pushed on `herald.out.<topic>`, in arrival order. */
function arrivals(c: TestCluster, topic: string): string[] {
  const ids: string[] = [];
  c.nc.subscribe(`herald.out.${topic}`, {
    callback: (_e, m) => {
      ids.push(m.json<{ id: string }>().id);
    },
  });
  return ids;
}

/** Publishes `count` JetStream messages on `herald.in.<topic>` with many acks in flight. */
async function backlog(js: JetStreamClient, topic: string, count: number, id = (i: number) => `${topic}-${i}`): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    const acks = [];
    for (let j = i; j < Math.min(count, i + 500); j++) acks.push(js.publish(`herald.in.${topic}`, JSON.stringify({ id: id(j), data: { n: j } })));
    await Promise.all(acks);
  }
}

describe("topic isolation", () => {
  it("a paused topic with 3000 messages queued (over the 1000 an actor holds) does not stop another topic", async () => {
    const c = await oneNode({ demo: { channel: "nats" }, other: { channel: "nats" } });
    const demo = arrivals(c, "demo");
    const other = arrivals(c, "other");
    await c.nc.flush();
    expect((await c.cli(["pause", "--topic", "demo"])).code).toBe(0);
    const js = jetstream(c.nc);
    await backlog(js, "demo", 3000);
    // The actor holds what its budget allows of the paused topic, and no more.
    const held = async () => (await c.status()).nodes[0]!.actors.find((a) => a.kind === "subqueue")?.gauges?.held ?? 0;
    await waitFor(async () => (await held()) >= 1000, { timeoutMs: 15_000, what: "the paused topic's budget full" });
    expect(await held()).toBe(1000);
    await js.publish("herald.in.other", JSON.stringify({ id: "other-1", data: {} }));
    await waitFor(() => other.includes("other-1"), { timeoutMs: 5000, what: "the other topic's message, while demo is paused" });
    expect(demo).toHaveLength(0);
    expect((await c.cli(["resume", "--topic", "demo"])).code).toBe(0);
    await waitFor(() => new Set(demo).size === 3000, { timeoutMs: 30_000, what: "all 3000 demo messages after resume" });
  });

  it("a topic whose webhook is slow holds its own in-flight slots, at most its concurrency; another topic goes first", async () => {
    // Every request waits until the test lets it go; the test records when the other topic arrived.
    const waiting: (() => void)[] = [];
    let received = 0;
    server = createServer((req, res) => {
      req.resume();
      received++;
      waiting.push(() => res.writeHead(200).end("ok"));
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow`;
    let open = 0;
    let mostOpen = 0;
    server.on("request", (_req, res) => {
      mostOpen = Math.max(mostOpen, ++open);
      res.on("finish", () => open--);
    });
    const c = await oneNode({ slow: { channel: "webhook", url, timeoutMs: 30_000, concurrency: 6 }, demo: { channel: "nats" } }, { maxInFlight: 8 });
    const demo = arrivals(c, "demo");
    await c.nc.flush();
    const js = jetstream(c.nc);
    await backlog(js, "slow", 40);
    // Its concurrency: 6 requests at once, and no more however long they take.
    await waitFor(() => received >= 6, { timeoutMs: 10_000, what: "the slow webhook holding 6 requests" });

    await js.publish("herald.in.demo", JSON.stringify({ id: "demo-1", data: {} }));
    // No slow request has finished: the demo message must not need one of their slots.
    await waitFor(() => demo.includes("demo-1"), { timeoutMs: 5000, what: "the demo message while the webhook holds every request" });
    // Meanwhile no 7th request was sent.
    expect(received).toBe(6);
    for (const release of waiting.splice(0)) release();
    const releaser = setInterval(() => waiting.splice(0).forEach((release) => release()), 20);
    try {
      await waitFor(async () => (await c.status()).queue.pending === 0, { timeoutMs: 30_000, what: "the slow topic drained" });
    } finally {
      clearInterval(releaser);
    }
    expect(received).toBe(40);
    expect(mostOpen).toBe(6);
  });

  it("a topic with a 20,000-message backlog does not delay a message on another topic", async () => {
    const c = await oneNode({ bulk: { channel: "nats" }, demo: { channel: "nats" } });
    const bulk = arrivals(c, "bulk");
    const demo = arrivals(c, "demo");
    await c.nc.flush();
    const js = jetstream(c.nc);
    await backlog(js, "bulk", 20_000);
    await js.publish("herald.in.demo", JSON.stringify({ id: "demo-1", data: {} }));
    const atPublish = bulk.length;
    await waitFor(() => demo.includes("demo-1"), { timeoutMs: 10_000, what: "the demo message behind the bulk backlog" });
    const meanwhile = bulk.length - atPublish;
    console.log(`backlog isolation: ${20_000 - atPublish} bulk messages were waiting when the demo message was published; ${meanwhile} were pushed before it`);
    // Read in stream order, it would have come after every one of them.
    expect(20_000 - atPublish).toBeGreaterThan(2000);
    expect(meanwhile).toBeLessThan((20_000 - atPublish) / 2);
    await waitFor(() => new Set(bulk).size === 20_000, { timeoutMs: 60_000, what: "the bulk backlog delivered" });
  });
});

describe("ids and unknown topics", () => {
  it("the same id on two topics is two messages: duplicates are detected per topic", async () => {
    const c = await oneNode({ a: { channel: "nats" }, b: { channel: "nats" } });
    const a = arrivals(c, "a");
    const b = arrivals(c, "b");
    await c.nc.flush();
    const submit = async (topic: string) =>
      decode<{ ok: boolean; id: string; duplicate: boolean }>((await c.nc.request("herald.submit", encode({ topic, id: "order-1", data: {} }), { timeout: 5000 })).data);
    expect(await submit("a")).toMatchObject({ ok: true, id: "order-1", duplicate: false });
    expect(await submit("b")).toMatchObject({ ok: true, id: "order-1", duplicate: false });
    // Within one topic the id is still deduplicated.
    expect(await submit("a")).toMatchObject({ ok: true, duplicate: true });
    await waitFor(() => a.includes("order-1") && b.includes("order-1"), { timeoutMs: 10_000, what: "order-1 on both topics" });
  });

  it("publishes on 50 unconfigured topics become dead letters on one subject, and the queue empties", async () => {
    const c = await oneNode({ demo: { channel: "nats" } });
    const js = jetstream(c.nc);
    for (let i = 0; i < 50; i++) await js.publish(`herald.in.junk${i}`, JSON.stringify({ data: { i } }));
    await js.publish("herald.in.a.b", JSON.stringify({ data: {} }));
    await waitFor(async () => (await c.status()).queue.pending === 0, { timeoutMs: 15_000, what: "the junk swept out of the queue" });
    const jsm = await js.jetstreamManager();
    const subjects = (await jsm.streams.info("HERALD_DLQ", { subjects_filter: ">" })).state.subjects ?? {};
    expect(subjects).toEqual({ "herald.dlq._unknown": 51 });
    const letter = await jsm.streams.getMessage("HERALD_DLQ", { last_by_subj: "herald.dlq._unknown" });
    const dl = decode<DeadLetter>(letter!.data);
    expect(dl.reason).toBe("unknown-topic");
    expect(dl.error).toContain("no topic");
    const listed = await c.cli(["dlq", "list", "--topic", "junk7", "--json"]);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ topic: "junk7", reason: "unknown-topic" }]);
  });
});
