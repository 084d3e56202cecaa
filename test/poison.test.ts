/**
 * One message must not stall the pipeline. The reported payload — msgpack of ~400 bytes whose
 * shared-reference extensions describe a structure exponentially large when walked — is refused at
 * once on every path; and a message that kills the actor reading it (a fault drill) is retired as
 * a poison dead letter after a bounded number of deliveries, while the messages held beside it are
 * delivered, not blamed.
 */
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { decode } from "../runtime/codec/index.js";
import { type DeadLetter } from "../runtime/pipeline/streams.js";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { HEADER_DRILL } from "../runtime/names.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});


/**
 * `{ topic: "demo", data: X0 }` where each Xi is an object `{ a: X(i+1), b: <pointer to X(i+1)> }`
 * in msgpackr's structured-clone extensions (0x69 defines an id, 0x70 points at one): `levels`
 * levels describe 2^levels leaves in a few hundred bytes.
 */
function sharedReferences(levels: number): Uint8Array {
  const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)];
  const id = (n: number) => [0xd6, 0x69, 0, 0, 0, n];
  const ptr = (n: number) => [0xd6, 0x70, 0, 0, 0, n];
  const bytes = [0x82, ...str("topic"), ...str("demo"), ...str("data")];
  for (let i = 0; i < levels; i++) bytes.push(...id(i), 0x82, ...str("a"));
  bytes.push(...id(levels), 0x81, ...str("v"), 1);
  for (let i = levels - 1; i >= 0; i--) bytes.push(...str("b"), ...ptr(i + 1));
  return Uint8Array.from(bytes);
}

async function startOne(extra: Record<string, unknown> = {}): Promise<TestCluster> {
  cluster = await TestCluster.start({
    nodes: 1,
    actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
    extra: { topics: { demo: { channel: "nats" } }, ...extra },
  });
  cluster.startAll();
  await cluster.waitStatus("the node running", allRunning, 30_000);
  return cluster;
}

/** Every dead letter as it is written, by id. */
async function deadLetters(c: TestCluster): Promise<Map<string, DeadLetter>> {
  const dead = new Map<string, DeadLetter>();
  const consumer = await jetstream(c.nc).consumers.get("HERALD_DLQ", { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume();
  void (async () => {
    for await (const m of messages) {
      // The originals kept beside too-large letters are not letters.
      if (m.subject.startsWith("herald.dlq._body.")) continue;
      const dl = decode<DeadLetter>(m.data);
      dead.set(dl.id, dl);
    }
  })();
  return dead;
}

describe("hostile payloads", () => {
  it("the shared-reference payload is refused on herald.submit and dead-lettered from herald.in.*; a valid message behind it arrives within a second", async () => {
    const c = await startOne();
    const out: string[] = [];
    c.nc.subscribe("herald.out.demo", {
    callback: (_e, m) => {
      out.push(m.json<{ id: string }>().id);
    },
  });
    const dead = await deadLetters(c);
    // 23 levels: 8 million paths in 435 bytes (walking them took Herald 0.1 about 4 s).
    const hostile = sharedReferences(23);
    expect(hostile.length).toBeLessThan(450);

    const reply = decode<{ ok: boolean; error: string; reason: string }>((await c.nc.request("herald.submit", hostile, { timeout: 5000 })).data);
    expect(reply).toMatchObject({ ok: false, reason: "invalid" });
    expect(reply.error).toMatch(/extension type 105/);

    const js = jetstream(c.nc);
    const ack = await js.publish("herald.in.demo", hostile);
    const valid = await js.publish("herald.in.demo", JSON.stringify({ id: "after-hostile", data: {} }));
    expect(valid.seq).toBe(ack.seq + 1);
    const sentAt = performance.now();
    await waitFor(() => out.includes("after-hostile"), { timeoutMs: 1000, what: "the valid message behind the hostile one" });
    console.log(`hostile payload: the next message arrived ${Math.round(performance.now() - sentAt)} ms after it was published`);
    await waitFor(() => dead.get(`invalid:${ack.seq}`), { timeoutMs: 5000, what: "the hostile payload's dead letter" });
    expect(dead.get(`invalid:${ack.seq}`)!.error).toMatch(/extension type 105/);
    const s = await c.status();
    expect(s.nodes[0]!.actors.map((a) => a.restarts)).toEqual(s.nodes[0]!.actors.map(() => 0));
  });
});

describe("poison messages", () => {
  it("a message that kills its reader is retired as poison; the messages held beside it are delivered, not blamed", async () => {
    const c = await startOne({ faultInjection: true, pipeline: { ackWaitMs: 1000 } });
    const out = new Set<string>();
    c.nc.subscribe("herald.out.demo", {
    callback: (_e, m) => {
      out.add(m.json<{ id: string }>().id);
    },
  });
    const dead = await deadLetters(c);
    const js = jetstream(c.nc);
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    // Ten before it and ten after it, all in one fetch: the actor dies with all of them held.
    for (const id of ids.slice(0, 10)) await js.publish("herald.in.demo", JSON.stringify({ id, data: {} }));
    const h = natsHeaders();
    h.set(HEADER_DRILL, "crash");
    const poison = await js.publish("herald.in.demo", JSON.stringify({ id: "poison", data: {} }), { headers: h });
    for (const id of ids.slice(10)) await js.publish("herald.in.demo", JSON.stringify({ id, data: {} }));

    const letter = await waitFor(() => dead.get(`poison:${poison.seq}`), { timeoutMs: 45_000, what: "the poison dead letter" });
    expect(letter!.reason).toBe("poison");
    expect(letter!.error).toMatch(/died 2 times/);
    expect(letter!.error).toContain("fault drill");
    await waitFor(() => ids.every((id) => out.has(id)), { timeoutMs: 20_000, what: "every innocent message delivered" });
    expect(out.has("poison")).toBe(false);
    expect([...dead.values()].map((d) => d.reason)).toEqual(["poison"]);
    const s = await c.waitStatus("the queue empty", (st) => st.queue.pending === 0, 10_000);
    // Three deaths: the first delivery (read unmarked), then two strikes.
    expect(s.nodes[0]!.actors.find((a) => a.kind === "subqueue")!.restarts).toBe(3);
    // It is kept whole, so once the bug is fixed it can be replayed.
    const listed = JSON.parse((await c.cli(["dlq", "list", "--json"])).stdout) as { id: string; reason: string }[];
    expect(listed).toMatchObject([{ id: `poison:${poison.seq}`, reason: "poison" }]);
  });
});

describe("successor records always fit", () => {
  /** A server that accepts 64 KiB per message; Herald then allows 50 000 bytes of data. */
  const small = { natsConfig: "max_payload: 65536\n" };

  it("a message whose exception entry exceeds max_payload becomes a dead letter (too-large) keeping its original, not a retry loop", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      ...small,
      extra: { topics: { demo: { channel: "nats" } }, limits: { maxPayloadBytes: 50_000 } },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("the node running", allRunning, 30_000);
    const dead = await deadLetters(c);
    // 9 000 numbers 0.5: 36 KB as JSON (accepted), 81 KB as a msgpack envelope (over 64 KiB).
    const raw = JSON.stringify({ id: "floats", data: { xs: Array(9000).fill(0.5) } });
    expect(raw.length).toBeLessThan(50_000);
    await jetstream(c.nc).publish("herald.in.demo", raw);
    const letter = await waitFor(() => dead.get("floats"), { timeoutMs: 15_000, what: "the too-large dead letter" });
    expect(letter!.reason).toBe("too-large");
    expect(letter!.envelope).toBeUndefined();
    expect(letter!.body?.bytes).toBe(raw.length);
    const jsm = await jetstream(c.nc).jetstreamManager();
    const body = await jsm.streams.getMessage("HERALD_DLQ", { seq: letter!.body!.seq });
    expect(new TextDecoder().decode(body!.data)).toBe(raw);
    await c.waitStatus("nothing left retrying", (s) => s.queue.pending === 0 && s.exceptions.retrying === 0, 10_000);
    expect((await c.cli(["dlq", "purge"])).stdout).toBe("purged 1 dead letter\n");
    expect((await jsm.streams.info("HERALD_DLQ")).state.messages).toBe(0);
  });

  it("a node refuses to start when limits.maxPayloadBytes does not fit the server's max_payload, with one clear line", async () => {
    cluster = await TestCluster.start({ nodes: 1, ...small, extra: { limits: { maxPayloadBytes: 60_000 } } });
    const node = cluster.startNode("n1");
    const exit = await node.exited;
    expect(exit.code).not.toBe(0);
    const output = cluster.nodeOutput("n1");
    expect(output).toContain("limits.maxPayloadBytes = 60000 does not fit the NATS server's max_payload of 65536 bytes");
    expect(output).toContain("lower limits.maxPayloadBytes to at most 56320");
    expect(output).not.toMatch(/\n\s+at /);
  });
});
