/**
 * Hostile input, generated (fast-check), against one running node, on every ingest path at once:
 * `herald.in.<topic>` (fire-and-forget, with forged headers), `herald.submit`, HTTP, an HTTP
 * collector's pages, and `herald dlq replay` of forged dead letters. The payloads are the ones that
 * hurt decoders: msgpack shared references and every other extension type, record definitions,
 * invalid UTF-8, deep nesting, huge key counts, claimed lengths far past the bytes sent, oversize
 * envelopes. Each input must be refused with a reason or end as a dead letter with a reason; no
 * actor may restart; and after every batch a valid message must arrive within a second.
 *
 * `HERALD_HOSTILE_INPUTS` sets how many inputs are generated (default 1200; `npm run
 * test:hostile` runs 10 000). The counts are printed at the end.
 */
import { DeliverPolicy, jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import fc from "fast-check";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, encode } from "../runtime/codec/index.js";
import type { DeadLetter } from "../runtime/pipeline/streams.js";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

const INPUTS = Number(process.env.HERALD_HOSTILE_INPUTS ?? 1200);
const BATCH = 20;
const LIMITS = { maxPayloadBytes: 16_384, maxDepth: 16, maxValues: 2000, maxKeys: 200, maxStringBytes: 8192 };

// ---------------------------------------------------------------------------------------------
// msgpack, byte by byte: what no well-behaved encoder writes.

const u16 = (n: number) => [(n >>> 8) & 0xff, n & 0xff];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const str = (s: string) => {
  const b = [...Buffer.from(s)];
  return b.length < 32 ? [0xa0 | b.length, ...b] : [0xd9, b.length, ...b];
};
/** `{ topic: "demo", data: { x: <value> } }` with `value` as raw msgpack bytes. */
const inEnvelope = (value: number[]) => [0x82, ...str("topic"), ...str("demo"), ...str("data"), 0x81, ...str("x"), ...value];

/** Structured-clone references (0x69 id, 0x70 pointer): 2^levels paths in a few hundred bytes. */
const sharedRefs = fc.integer({ min: 8, max: 40 }).map((levels) => {
  const id = (n: number) => [0xd6, 0x69, ...u32(n)];
  const ptr = (n: number) => [0xd6, 0x70, ...u32(n)];
  const bytes: number[] = [];
  for (let i = 0; i < levels; i++) bytes.push(...id(i), 0x82, ...str("a"));
  bytes.push(...id(levels), 0x81, ...str("v"), 1);
  for (let i = levels - 1; i >= 0; i--) bytes.push(...str("b"), ...ptr(i + 1));
  return inEnvelope(bytes);
});
/** Every extension form, any type (timestamps, records 0x72, ids, pointers, bigints, regexps…). */
const extension = fc
  .tuple(fc.integer({ min: -128, max: 127 }), fc.constantFrom(1, 2, 4, 8, 16, 0, 3, 300), fc.uint8Array({ maxLength: 300 }))
  .map(([type, len, body]) => {
    const data = [...body, ...Array(Math.max(0, len - body.length)).fill(0)].slice(0, len);
    const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
    const head = fixed[len] !== undefined ? [fixed[len]!] : len < 256 ? [0xc7, len] : [0xc8, ...u16(len)];
    return inEnvelope([...head, type & 0xff, ...data]);
  });
/** Strings whose bytes are not UTF-8: lone continuations, overlongs, surrogates, truncations. */
const badUtf8 = fc.constantFrom([0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80]);
const invalidUtf8 = fc.tuple(badUtf8, fc.constantFrom("value", "key", "topic", "json")).map(([bad, where]) => {
  const s = [0xa0 | (bad.length + 2), 0x61, ...bad, 0x62];
  if (where === "value") return inEnvelope(s);
  if (where === "key") return [0x82, ...str("topic"), ...str("demo"), ...str("data"), 0x81, ...s, 0xc0];
  if (where === "topic") return [0x82, ...str("topic"), ...s, ...str("data"), 0x80];
  return [...Buffer.from('{"topic":"demo","data":{"x":"a'), ...bad, ...Buffer.from('b"}}')];
});
/** Nesting far past the limit, in msgpack and in JSON. */
const deep = fc.tuple(fc.integer({ min: 17, max: 100_000 }), fc.boolean()).map(([n, json]) =>
  json ? [...Buffer.from(`{"topic":"demo","data":{"x":${"[".repeat(n)}1${"]".repeat(n)}}}`)] : inEnvelope([...Array(n).fill(0x91), 0xc0]),
);
/** Maps with more keys than allowed (and, in msgpack, than are sent). */
const manyKeys = fc.tuple(fc.integer({ min: 201, max: 5000 }), fc.boolean(), fc.boolean()).map(([n, json, lie]) => {
  if (json) return [...Buffer.from(JSON.stringify({ topic: "demo", data: Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])) }))];
  const keys = lie ? 3 : n;
  const body: number[] = [];
  for (let i = 0; i < keys; i++) body.push(...str(`k${i}`), i & 0x7f);
  return inEnvelope([0xde, ...u16(n), ...body]);
});
/** Lengths claimed far past the bytes that follow. */
const claimed = fc.constantFrom(0xdc, 0xdd, 0xde, 0xdf, 0xda, 0xdb, 0xc5, 0xc6).map((t) => {
  const len = t === 0xdc || t === 0xde || t === 0xda || t === 0xc5 ? u16(0xffff) : u32(0xffffffff);
  return inEnvelope([t, ...len, 1, 2, 3]);
});
/** Data over `limits.maxPayloadBytes`, and strings over `limits.maxStringBytes`. */
const oversize = fc.integer({ min: 8193, max: 60_000 }).map((n) => [...Buffer.from(JSON.stringify({ topic: "demo", data: { s: "x".repeat(n) } }))]);
/** Plausible envelopes with a twist: a prototype key, a wrong type, an unknown field, a bad id. */
const twisted = fc
  .constantFrom(
    '{"topic":"demo","data":{"__proto__":{"polluted":1}}}',
    '{"topic":"demo","data":[1,2]}',
    '{"topic":"demo","data":{},"createdAt":1}',
    '{"topic":"demo","id":"a b","data":{}}',
    '{"topic":"nosuch","data":{}}',
    '{"topic":"demo","data":{"n":1e400}}',
    '{"data":{},"to":""}',
    "{",
  )
  .map((t) => [...Buffer.from(t)]);
/**
 * Random bytes that cannot be a valid submission: one must be an object, so it opens with a
 * msgpack map (fixmap 0x80–0x8f, map16, map32) or JSON `{` (after optional whitespace). A lone
 * 0x80 is `{}`, a valid empty message, and was once drawn here as "junk".
 */
const OBJECT_OPENERS = new Set([...Array.from({ length: 16 }, (_, i) => 0x80 + i), 0xde, 0xdf, 0x7b, 0x20, 0x09, 0x0a, 0x0d]);
const junk = fc
  .uint8Array({ minLength: 1, maxLength: 400 })
  .filter((b) => !OBJECT_OPENERS.has(b[0]!))
  .map((b) => [...b]);

const KINDS = { sharedRefs, extension, invalidUtf8, deep, manyKeys, claimed, oversize, twisted, junk };
type Kind = keyof typeof KINDS;
type Path = "nats" | "submit" | "http";
interface Hostile {
  kind: Kind;
  path: Path;
  bytes: Uint8Array;
  /** Forged headers on the fire-and-forget path. */
  forged: boolean;
}
const hostile: fc.Arbitrary<Hostile> = fc
  .tuple(
    fc.constantFrom(...(Object.keys(KINDS) as Kind[])).chain((kind) => KINDS[kind].map((bytes) => ({ kind, bytes }))),
    fc.constantFrom<Path>("nats", "nats", "submit", "http"),
    fc.boolean(),
  )
  .map(([{ kind, bytes }, path, forged]) => ({ kind, path, bytes: Uint8Array.from(bytes), forged, [fc.toStringMethod]: () => `${kind} via ${path} (${bytes.length} bytes)` }));

// ---------------------------------------------------------------------------------------------

let cluster: TestCluster;
let js: JetStreamClient;
let httpUrl: string;
let source: Server;
const pushed = new Set<string>();
const dead = new Map<string, DeadLetter>();
const counts = new Map<string, number>();
const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
/** Hostile items the HTTP collector's source serves, one page per request. */
const pages: unknown[][] = [];
let stopDlq: (() => void) | undefined;
/** The one valid item of the collector's hostile page was pushed. */
let collectedFine = false;


describe("hostile input on every ingest path", () => {
  beforeAll(async () => {
    source = createServer((_req, res) => {
      const page = pages.shift() ?? [];
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ messages: page, cursor: page.length > 0 ? String(Date.now()) : undefined }));
    });
    await new Promise<void>((r) => source.listen(0, "127.0.0.1", () => r()));
    cluster = await TestCluster.start({
      nodes: 1,
      http: true,
      faultInjection: false,
      actors: { ingest: 1, collector: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        limits: LIMITS,
        http: { maxBodyBytes: 200_000 },
        rules: { primary: "fifo", secondary: "fifo", maxCount: 1, maxAgeMs: 10 },
        topics: { demo: { channel: "nats" } },
        collectors: [{ name: "feed", kind: "http", url: `http://127.0.0.1:${(source.address() as AddressInfo).port}/feed`, topic: "demo", intervalMs: 200 }],
      },
    });
    cluster.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        const push = m.json<{ id: string; data: { fine?: boolean } }>();
        pushed.add(push.id);
        if (push.data.fine === true) collectedFine = true;
      },
    });
    cluster.startAll();
    await cluster.waitStatus("the node running, collector included", (s) => allRunning(s) && s.nodes[0]!.actors.some((a) => a.kind === "collector"), 30_000);
    httpUrl = `http://127.0.0.1:${(cluster.config.nodes[0] as { http: { port: number } }).http.port}/v1/messages`;
    js = jetstream(cluster.nc);
    const letters = await (await js.consumers.get("HERALD_DLQ", { deliver_policy: DeliverPolicy.All })).consume();
    stopDlq = () => letters.stop();
    void (async () => {
      for await (const m of letters) {
        if (m.subject.startsWith("herald.dlq._body.")) continue;
        try {
          const dl = decode<DeadLetter>(m.data);
          dead.set(dl.id, dl);
        } catch {
          // A letter forged by the dlq test below: not Herald's.
        }
      }
    })();
  });

  afterAll(async () => {
    stopDlq?.();
    await cluster?.stop();
    await new Promise<void>((r) => source?.close(() => r()));
  });

  /** Sends one input on its path; resolves with what to wait for (a dead letter id), if anything. */
  /** What each stored input was, for failure messages. */
  const storedKinds = new Map<string, string>();

  async function send(h: Hostile): Promise<string | undefined> {
    if (h.path === "submit") {
      const reply = await cluster.nc.request("herald.submit", h.bytes, { timeout: 5000 });
      const asJson = reply.data[0] === 0x7b;
      const r = (asJson ? reply.json() : decode(reply.data)) as { ok: boolean; id?: string; error?: string; reason?: string };
      expect(r.ok, `${h.kind} via submit was accepted`).toBe(false);
      expect(r.error, `${h.kind} via submit`).toMatch(/\S/);
      expect(["invalid", "unknown-topic", "too-large"]).toContain(r.reason);
      return void count(`${h.kind}: refused`);
    }
    if (h.path === "http") {
      const res = await fetch(httpUrl, { method: "POST", headers: { "content-type": "application/json" }, body: h.bytes, signal: AbortSignal.timeout(10_000) });
      const answer = (await res.json()) as { error?: string };
      expect(res.status, `${h.kind} via HTTP was accepted`).not.toBe(202);
      expect(res.status >= 400 && res.status < 500, `${h.kind} via HTTP: status ${res.status} ${answer.error}`).toBe(true);
      expect(answer.error).toMatch(/\S/);
      return void count(`${h.kind}: refused`);
    }
    const hdrs = natsHeaders();
    if (h.forged) {
      hdrs.set("Herald-Envelope", "1");
      hdrs.set("Herald-Drill", "crash"); // ignored: fault injection is off
    }
    const ack = await js.publish("herald.in.demo", h.bytes, { headers: hdrs });
    count(`${h.kind}: stored`);
    storedKinds.set(`invalid:${ack.seq}`, `${h.kind}${h.forged ? " (forged headers)" : ""}: ${Buffer.from(h.bytes.slice(0, 60)).toString("hex")}`);
    return `invalid:${ack.seq}`;
  }

  let valid = 0;
  /** A valid message after each batch must arrive within a second. */
  async function validArrives(): Promise<void> {
    const id = `valid-${++valid}`;
    const reply = decode<{ ok: boolean }>((await cluster.nc.request("herald.submit", encode({ topic: "demo", id, data: { n: valid } }), { timeout: 5000 })).data);
    expect(reply.ok).toBe(true);
    await waitFor(() => pushed.has(id), { timeoutMs: 1000, what: `valid message ${id} within a second of a hostile batch` });
  }

  it(`${INPUTS} generated inputs: each refused or dead-lettered with its reason; a valid message gets through after every batch`, async () => {
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const waiting: string[] = [];
        for (const h of batch) {
          const letter = await send(h);
          if (letter) waiting.push(letter);
        }
        sent += batch.length;
        // Every stored input ends as a dead letter with its reason.
        await waitFor(() => waiting.every((id) => dead.has(id)), { timeoutMs: 10_000, what: "the batch's dead letters" }).catch(() => {
          const open = waiting.filter((id) => !dead.has(id));
          const said = cluster.nodeOutput("n1").split("\n").filter((l) => / (warn|error) /.test(l)).slice(-5);
          throw new Error(`never dead-lettered: ${open.map((id) => `${id} ${storedKinds.get(id)}`).join("; ")}\n${said.join("\n")}`);
        });
        await validArrives();
      }),
      { numRuns: Math.ceil(INPUTS / BATCH), endOnFailure: true },
    );
    for (const dl of dead.values()) {
      expect(dl.error).toMatch(/\S/);
      expect(["invalid", "unknown-topic", "too-large"]).toContain(dl.reason);
    }
    expect(sent).toBeGreaterThanOrEqual(INPUTS);
  });

  it("the HTTP collector's pages of hostile items: each becomes a dead letter, the collector keeps collecting", async () => {
    const items = [
      { data: { __proto__x: 1 }, topic: "nosuch" },
      { data: "not an object" },
      { data: JSON.parse('{"__proto__":{"polluted":true}}') },
      { data: { s: "x".repeat(9000) } },
      { data: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])) },
      { data: { deep: JSON.parse(`${"[".repeat(40)}1${"]".repeat(40)}`) } },
      { id: "collected-ok", data: { fine: true } },
    ];
    const before = dead.size;
    pages.push(items);
    await waitFor(() => collectedFine && dead.size >= before + items.length - 1, { timeoutMs: 15_000, what: "the collected page handled" });
    count("collector page items: handled");
    const s = await cluster.status();
    expect(s.collectors[0]).toMatchObject({ state: "ok" });
  });

  it("herald dlq replay of forged dead letters: each replayed or refused with a reason, none crashes the CLI or the node", async () => {
    const forgedLetters: unknown[] = [
      { id: "f1", topic: "demo", reason: "exhausted", error: "x", attempts: 1, deadAt: 0, envelope: { id: "f1", topic: "demo", data: [1, 2], createdAt: 0, source: "submit", attempts: 1 } },
      { id: "f2", topic: "demo", reason: "exhausted", error: "x", attempts: 1, deadAt: 0, envelope: { id: "f2 bad", topic: "demo", data: {}, createdAt: 0, source: "submit", attempts: 1 } },
      { id: "f3", topic: "demo", reason: "poison", error: "x", attempts: 0, deadAt: 0, subject: "elsewhere.subject", raw: new Uint8Array([1, 2]) },
      { id: "f4", topic: "demo", reason: "exhausted", error: "x", attempts: 1, deadAt: 0, envelope: { id: "f4", topic: "demo", data: { ok: 1 }, createdAt: 0, source: "submit", attempts: 9 } },
    ];
    for (const dl of forgedLetters) await js.publish("herald.dlq.demo", encode(dl));
    await js.publish("herald.dlq.demo", Uint8Array.from(sharedRefsBytes()));
    const r = await cluster.cli(["dlq", "replay", "--all"]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toContain("replayed f4");
    expect(r.stderr).toContain("cannot replay f1");
    expect(r.stderr).toContain("cannot replay f2");
    expect(r.stderr).toContain("cannot replay f3");
    await waitFor(() => pushed.has("f4"), { timeoutMs: 5000, what: "the one valid replayed letter" });
    count("forged dead letters: replayed or refused");
  });

  it("afterwards: no actor restarted, the queue is empty, and the counts", async () => {
    const s = await cluster.waitStatus("the queue drained", (st) => st.queue.pending === 0 && st.exceptions.retrying === 0, 15_000);
    expect(s.nodes[0]!.state).toBe("alive");
    expect(s.nodes[0]!.actors.map((a) => [a.id, a.state, a.restarts])).toEqual(s.nodes[0]!.actors.map((a) => [a.id, "running", 0]));
    const total = [...counts.entries()].filter(([k]) => !k.startsWith("collector") && !k.startsWith("forged")).reduce((n, [, v]) => n + v, 0);
    const lines = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `  ${k}: ${v}`);
    console.log(`hostile input: ${total} generated inputs, ${dead.size} dead letters, ${valid} valid messages each through within 1 s, 0 restarts\n${lines.join("\n")}`);
  });
});

function sharedRefsBytes(): number[] {
  return fc.sample(sharedRefs, { numRuns: 1, seed: 7 })[0]!;
}
