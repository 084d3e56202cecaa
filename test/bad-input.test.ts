/**
 * Bad input, property-based (fast-check). Against one running node: malformed envelopes, random
 * bytes, oversize payloads, forged internal headers and hostile template data, sent by every
 * ingest path. Every request and HTTP call gets an answer; every fire-and-forget input ends
 * delivered or as a dead letter with its reason; template data is printed, never evaluated; the
 * node never crashes. Without a cluster: invalid rules and configs are refused with a path.
 */
import { DeliverPolicy, jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../runtime/config/index.js";
import { decode, encode } from "../runtime/codec/index.js";
import { type DeadLetter } from "../runtime/pipeline/streams.js";
import { RulesError, parseRules } from "../runtime/rules/schema.js";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { names } from "../runtime/names.js";

// ---------------------------------------------------------------------------------------------
// Arbitraries: what a careless or hostile client sends.

/** Text that looks like template syntax, markup, or odd Unicode. */
const hostileText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom(
    "{{ name }}", "{{name | upcase}}", "{% raw %}{{x}}{% endraw %}", "{% if true %}yes{% endif %}",
    "{%- assign x = 1 -%}{{x}}", "{{ 'a' | append: 'b' }}", "{{ message.id }}", "{{", "}}", "{%", "%}",
    "{{ constructor.constructor('return process')() }}", "{% for i in (1..100000000) %}x{% endfor %}",
    "<script>alert(1)</script>", "<b>&amp;</b>", "${name}", "\u202Eevil", "\u0000", "\ud800", "😀👩‍👩‍👧",
  ),
);
const hostileName = fc.array(hostileText, { maxLength: 4 }).map((parts) => parts.join(""));

/** `{ "a": { "a": … } }` nested `depth` levels. */
const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });
/** An object with an own key that naive code would treat as the prototype. */
const protoKeyed = fc
  .tuple(fc.constantFrom("__proto__", "constructor", "prototype"), fc.jsonValue({ maxDepth: 2 }))
  .map(([key, value]) => JSON.parse(`{"name":"p",${JSON.stringify(key)}:${JSON.stringify(value) ?? "null"}}`) as unknown);

const data = fc.oneof(
  { weight: 4, arbitrary: fc.record({ name: hostileName }) },
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 25, max: 60 }).map(nested),
  protoKeyed,
  fc.integer({ min: 2100, max: 6000 }).map((n) => ({ name: "x".repeat(n) })),
  fc.anything({ maxDepth: 2 }),
);
const goodId = fc.stringMatching(/^[A-Za-z0-9._:-]{1,24}$/);
const badId = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", "a b", "x\r\nNats-Msg-Id: y", "é", "*", ">"),
  fc.integer({ min: 129, max: 400 }).map((n) => "i".repeat(n)),
  fc.anything({ maxDepth: 1 }),
);
const envelopeLike = fc.record(
  {
    topic: fc.oneof(
      { weight: 4, arbitrary: fc.constant("demo") },
      fc.string({ maxLength: 10 }),
      fc.constantFrom("constructor", "__proto__"),
      fc.anything({ maxDepth: 1 }),
    ),
    to: fc.oneof(fc.string({ maxLength: 20 }), fc.constant("t".repeat(5000)), fc.anything({ maxDepth: 1 })),
    data,
    id: fc.oneof(goodId, badId),
  },
  { requiredKeys: [] },
);
/** Envelopes that should go through, but for what their data holds. */
const plausible = fc.record(
  { topic: fc.constant("demo"), data: fc.record({ name: hostileName }), to: fc.string({ minLength: 1, maxLength: 20 }), id: goodId },
  { requiredKeys: ["topic", "data"] },
);
/** Envelopes, some with a key too many (unknown, Herald's own, or a prototype key). */
const envelope = fc.oneof(
  { weight: 3, arbitrary: plausible },
  { weight: 6, arbitrary: envelopeLike },
  fc
    .tuple(envelopeLike, fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("createdAt", "attempts", "source", "__proto__")), fc.jsonValue({ maxDepth: 1 }))
    .map(([e, key, value]) => withKey({ ...e }, key, value)),
  fc.anything({ maxDepth: 3 }),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
);
/** What Herald's own ingest would queue, forged by a client that sets the internal header. */
const forgedEnvelope = fc.oneof(
  fc.record(
    {
      id: fc.oneof(goodId, badId),
      topic: fc.oneof(fc.constant("demo"), fc.constantFrom("nosuch", "constructor", "a b", "")),
      data,
      to: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
      createdAt: fc.oneof(fc.integer(), fc.string()),
      source: fc.constantFrom("nats", "submit", 7),
      attempts: fc.oneof(fc.nat(), fc.constant(-1), fc.string()),
    },
    { requiredKeys: [] },
  ),
  fc.anything({ maxDepth: 2 }),
);

/** Sets `key` as an own property, even `__proto__` (plain assignment would set the prototype). */
function withKey<T extends object>(o: T, key: string, value: unknown): T {
  return Object.defineProperty(o, key, { value, enumerable: true, configurable: true, writable: true });
}

const utf8 = new TextEncoder();
const json = (v: unknown) => utf8.encode(JSON.stringify(v) ?? "null");
/** msgpack, or JSON for the few values msgpack cannot carry. */
const pack = (v: unknown) => {
  try {
    return encode(v);
  } catch {
    return json(v);
  }
};
const deepText = (n: number, open: string, close: string) => `{"topic":"demo","data":{"a":${open.repeat(n)}1${close.repeat(n)}}}`;

/** What a client could put on the wire: an encoded envelope, or bytes (garbage, deep, oversize). */
type Wire = { value: unknown; as: "json" | "msgpack" } | { bytes: Uint8Array };
/** Counterexamples print short: a 20 000-level nesting is not worth reading in full. */
const clip = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}… (${text.length} chars)` : text);
const encoded =
  (as: "json" | "msgpack") =>
  (value: unknown): Wire =>
    ({ value, as, [fc.toStringMethod]: () => `${as} ${clip(fc.stringify(value))}` }) as Wire;
const raw = (bytes: Uint8Array): Wire =>
  ({ bytes, [fc.toStringMethod]: () => `${bytes.length} bytes ${clip(JSON.stringify(Buffer.from(bytes).toString("latin1")))}` }) as Wire;
const wire: fc.Arbitrary<Wire> = fc.oneof(
  { weight: 4, arbitrary: envelope.map(encoded("json")) },
  { weight: 3, arbitrary: envelope.map(encoded("msgpack")) },
  fc.uint8Array({ maxLength: 200 }).map(raw),
  fc.string({ unit: "binary", maxLength: 100 }).map((s) => raw(utf8.encode(s))),
  fc.integer({ min: 2, max: 20_000 }).map((n) => raw(utf8.encode(deepText(n, "[", "]")))),
  fc.integer({ min: 2, max: 20_000 }).map((n) => raw(Uint8Array.from([...Array(n).fill(0x91), 0xc0]))), // msgpack [[[…nil]]]
  fc.integer({ min: 3_000, max: 40_000 }).map((n) => raw(json({ topic: "demo", data: { name: "y".repeat(n) } }))),
);

/**
 * The bytes of `w`. With `tag`, a string `id` gets `_<tag>` appended, so that the message's output
 * or dead letter can be told apart from every other's; the id it then carries is returned too.
 */
function toBytes(w: Wire, tag?: string): { bytes: Uint8Array; id?: string } {
  if ("bytes" in w) return { bytes: w.bytes };
  const v = w.value as Record<string, unknown> | null;
  const hasId = typeof v === "object" && v !== null && !Array.isArray(v) && typeof v.id === "string";
  const value = tag !== undefined && hasId ? { ...v, id: `${v.id}_${tag}` } : w.value;
  return { bytes: w.as === "json" ? json(value) : pack(value), ...(hasId ? { id: (value as { id: string }).id } : {}) };
}

// ---------------------------------------------------------------------------------------------
// The running node and what comes out of it.

const BODY_LIMIT = 16_384;
/** Bounded run counts keep the file near a minute on two cores. */
const RUNS = { submit: 200, http: 150, fireAndForget: 25, template: 60 };
/** A cluster property stops at its first failure: shrinking would replay against a node the failure may have disturbed. */
const once = { endOnFailure: true } as const;

let cluster: TestCluster;
let js: JetStreamClient;
let url: string;
const outputs = new Map<string, Record<string, any>[]>();
const dead = new Map<string, DeadLetter[]>();
/** Ids acknowledged by herald.submit or HTTP: each must end delivered or dead. */
const accepted = new Set<string>();
/** How each accepted id came in, for failure messages. */
const acceptedFrom = new Map<string, string>();
let stopDlq: (() => void) | undefined;

const add = <T>(m: Map<string, T[]>, k: string, v: T) => m.set(k, [...(m.get(k) ?? []), v]);
const ended = (id: string) => outputs.has(id) || dead.has(id);

describe("bad input against one running node", () => {
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      http: true,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        limits: { maxPayloadBytes: 2048 },
        http: { maxBodyBytes: BODY_LIMIT },
        topics: { demo: { channel: "nats", template: { title: "Hello {{name}}" } } },
      },
    });
    cluster.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        const o = m.json<Record<string, any>>();
        add(outputs, o.id, o);
      },
    });
    cluster.startAll();
    const running = (s: ClusterStatus) => s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));
    await cluster.waitStatus("the node running", running, 30_000);
    url = `http://127.0.0.1:${(cluster.config.nodes[0] as { http: { port: number } }).http.port}/v1/messages`;
    js = jetstream(cluster.nc);
    // Every dead letter, as it is written.
    const letters = await (await js.consumers.get(names().dlqStream, { deliver_policy: DeliverPolicy.All })).consume();
    stopDlq = () => letters.stop();
    void (async () => {
      for await (const m of letters) {
        const dl = decode<DeadLetter>(m.data);
        add(dead, String(dl.id), dl);
      }
    })();
  });

  afterAll(async () => {
    stopDlq?.();
    await cluster?.stop();
  });

  it("herald.submit answers every input: ok with an id, or a refusal with a reason", async () => {
    await fc.assert(
      fc.asyncProperty(wire, async (w) => {
        const { bytes } = toBytes(w);
        const reply = await cluster.nc.request("herald.submit", bytes, { timeout: 5000 });
        // Answered in the caller's encoding: JSON for a payload that starts with "{".
        const asJson = new TextDecoder().decode(bytes).trimStart().startsWith("{");
        const r = (asJson ? reply.json() : decode(reply.data)) as { ok: boolean; id?: string; error?: string; reason?: string };
        if (r.ok) {
          expect(r.id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
          accepted.add(r.id!);
          acceptedFrom.set(r.id!, `submit ${JSON.stringify(r)} ${clip(Buffer.from(bytes).toString("hex"))}`);
        } else {
          expect(r.error).toMatch(/\S/);
          expect(["invalid", "unknown-topic"]).toContain(r.reason);
        }
      }),
      { numRuns: RUNS.submit, ...once },
    );
  });

  it("HTTP answers every input with 202 or a 4xx and a reason (never another 5xx, never a hang)", async () => {
    const body = fc.oneof(
      { weight: 4, arbitrary: envelope.map((v) => JSON.stringify(v) ?? "null") },
      fc.string({ unit: "binary", maxLength: 100 }),
      fc.integer({ min: 2, max: 20_000 }).map((n) => deepText(n, "[", "]")),
      fc.integer({ min: BODY_LIMIT, max: 3 * BODY_LIMIT }).map((n) => JSON.stringify({ topic: "demo", data: { name: "z".repeat(n) } })),
    ).map((text) => ({ text, [fc.toStringMethod]: () => clip(JSON.stringify(text)) }));
    const type = fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", undefined);
    await fc.assert(
      fc.asyncProperty(body, type, async ({ text }, contentType) => {
        const res = await fetch(url, {
          method: "POST",
          headers: contentType === undefined ? {} : { "content-type": contentType },
          body: contentType === undefined ? utf8.encode(text) : text,
          signal: AbortSignal.timeout(10_000),
        });
        const answer = (await res.json()) as { id?: string; error?: string };
        if (res.status === 202) {
          accepted.add(answer.id!);
          acceptedFrom.set(answer.id!, `http ${JSON.stringify(answer)} ${clip(text)}`);
          return;
        }
        if (res.status === 503) expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
        else expect(res.status >= 400 && res.status < 500, `status ${res.status}: ${answer.error}`).toBe(true);
        expect(answer.error).toMatch(/\S/);
      }),
      { numRuns: RUNS.http, ...once },
    );
  });

  it("fire-and-forget input on herald.in.* ends delivered or as a dead letter with its reason", async () => {
    const subject = fc.oneof({ weight: 5, arbitrary: fc.constant("demo") }, fc.stringMatching(/^[a-z0-9_-]{1,12}$/), fc.constant("a.b"));
    const input = fc.oneof(
      { weight: 4, arbitrary: fc.record({ subject, wire, forged: fc.constant(false) }) },
      // What Herald's own ingest queues, forged by a client that sets the internal header: trusted no more than the rest.
      fc.record({ subject: fc.constant("demo"), wire: forgedEnvelope.map(encoded("msgpack")), forged: fc.constant(true) }),
    );
    let k = 0;
    const run = Date.now().toString(36);
    await fc.assert(
      fc.asyncProperty(fc.array(input, { minLength: 1, maxLength: 12 }), async (inputs) => {
        const sent: { seq: number; ids: string[] }[] = [];
        for (const x of inputs) {
          const msgId = `ff-${run}-${k++}`;
          const { bytes, id } = toBytes(x.wire, msgId);
          const h = natsHeaders();
          if (x.forged) h.set("Herald-Envelope", "1");
          const ack = await js.publish(`herald.in.${x.subject}`, bytes, { msgID: msgId, headers: h });
          // Its id is the body's, else the Nats-Msg-Id; input that never became a message is `invalid:<seq>`.
          sent.push({ seq: ack.seq, ids: [`invalid:${ack.seq}`, msgId, ...(id === undefined ? [] : [id])] });
        }
        const open = () => sent.filter((s) => !s.ids.some(ended));
        await waitFor(() => open().length === 0, { timeoutMs: 20_000, what: "every input delivered or dead-lettered" }).catch(() => {
          throw new Error(`never delivered nor dead-lettered: ${JSON.stringify(open())}`);
        });
        for (const s of sent) for (const dl of s.ids.flatMap((id) => dead.get(id) ?? [])) {
          expect(dl.reason).toMatch(/\S/);
          expect(dl.error).toMatch(/\S/);
        }
      }),
      { numRuns: RUNS.fireAndForget, ...once },
    );
  });

  it("hostile template data is rendered literally: {{ }}, {% %}, HTML and odd Unicode in data are printed, not evaluated", async () => {
    await fc.assert(
      fc.asyncProperty(hostileName, async (name) => {
        const reply = decode<{ ok: boolean; id: string; error: string }>((await cluster.nc.request("herald.submit", encode({ topic: "demo", data: { name } }), { timeout: 5000 })).data);
        // A lone surrogate has no UTF-8 form: the encoder sends invalid bytes, which are refused.
        if (Buffer.from(name).toString() !== name) {
          expect(reply).toMatchObject({ ok: false, error: expect.stringMatching(/invalid UTF-8/) });
          return;
        }
        expect(reply.ok).toBe(true);
        const [out] = (await waitFor(() => outputs.get(reply.id), { timeoutMs: 10_000, what: `the push of ${reply.id}` }))!;
        expect(out!.data.name).toBe(name);
        expect(out!.title).toBe(`Hello ${out!.data.name}`);
      }),
      { numRuns: RUNS.template, ...once },
    );
    // And so for every push of the whole file whose name is a string.
    for (const o of [...outputs.values()].flat()) if (typeof o.data?.name === "string") expect(o.title).toBe(`Hello ${o.data.name}`);
  });

  it("afterwards: every accepted message ended delivered or dead, nothing crashed, and a valid message still arrives", async () => {
    await waitFor(() => [...accepted].every(ended), { timeoutMs: 20_000, what: "every accepted id delivered or dead-lettered" }).catch(async () => {
      const open = [...accepted].filter((id) => !ended(id)).slice(0, 10);
      const said = cluster.nodeOutput("n1").split("\n").filter((l) => open.some((id) => l.includes(id)) || l.includes("malformed queued envelope") || (/ (warn|error) /.test(l) && !l.includes("dead letter")));
      const s = await cluster.status();
      const gauges = JSON.stringify(s.nodes[0]?.actors.map((a) => [a.id, a.state, a.restarts, a.gauges]));
      throw new Error(`accepted but never delivered nor dead-lettered: ${open.map((id) => `${id} (${acceptedFrom.get(id)})`).join(" ")}\nqueue ${s.queue.pending}, retrying ${s.exceptions.retrying}, actors ${gauges}\n${said.slice(-20).join("\n")}`);
    });
    for (const dl of [...dead.values()].flat()) {
      expect(["invalid", "render", "rejected", "exhausted", "unknown-topic"]).toContain(dl.reason);
      expect(dl.error).toMatch(/\S/);
    }
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ topic: "demo", data: { name: "Ada" } }) });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };
    const [out] = (await waitFor(() => outputs.get(id), { timeoutMs: 10_000, what: "the valid message" }))!;
    expect(out!.title).toBe("Hello Ada");
    const s = await cluster.waitStatus("the queue drained", (st) => st.queue.pending === 0 && st.exceptions.retrying === 0, 15_000);
    expect(s.nodes[0]!.state).toBe("alive");
    expect(s.nodes[0]!.actors.map((a) => [a.id, a.state, a.restarts])).toEqual(s.nodes[0]!.actors.map((a) => [a.id, "running", 0]));
    console.log(`bad input: ${accepted.size} accepted by request/HTTP, ${outputs.size} pushed, ${dead.size} dead letters`);
  });
});

// ---------------------------------------------------------------------------------------------
// Rules and configs: refused with a path, never anything else.

/** Replaces the value at a random path of `base` (or deletes it, or adds an unknown key there). */
function mutate(base: Record<string, unknown>): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, at: (string | number)[]) => {
    paths.push(at);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...at, i]));
    else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
  };
  walk(base, []);
  const value = fc.oneof(
    fc.anything({ maxDepth: 2 }),
    fc.integer({ min: -5, max: 100_000 }),
    fc.string({ maxLength: 6 }),
    fc.constantFrom(null, true, [], {}, -1, 0.5, 1e300, "fifo", "n1"),
  );
  const edit = fc.constantFrom("set", "delete", "add");
  return fc.tuple(fc.constantFrom(...paths), value, edit, fc.string({ maxLength: 8 })).map(([path, v, how, key]) => {
    const copy = structuredClone(base) as Record<string, unknown>;
    if (path.length === 0) return how === "set" ? v : copy;
    const parent = path.slice(0, -1).reduce<any>((o, p) => o[p], copy);
    const last = path[path.length - 1]!;
    if (how === "delete" && !Array.isArray(parent)) delete parent[last];
    else if (how === "add" && typeof parent[last] === "object" && parent[last] !== null && !Array.isArray(parent[last])) withKey(parent[last], key || "__proto__", v);
    else parent[last] = v;
    return copy;
  });
}

const validRules = {
  primary: "lifo", secondary: "random", maxCount: 10, maxAgeMs: 500, seed: 3,
  calendar: [
    { name: "night", timeZone: "Europe/Paris", days: ["mon", "sat"], dates: [{ from: "2025-01-01", to: "2025-02-01" }], time: { from: "22:00", to: "06:00" }, primary: "fifo" },
  ],
  load: [{ windowMs: 1000, thresholdPerSec: 50, secondary: "fifo", maxCount: 5 }],
};
const validConfig = {
  cluster: "c1",
  nats: { embedded: true, port: 4333, storeDir: "store" },
  heartbeat: { intervalMs: 200, timeoutMs: 1000 },
  master: { preset: "n1" },
  limits: { maxPayloadBytes: 2048 },
  pipeline: { ackWaitMs: 3000, retry: { backoffMs: [100, 200], maxAttempts: 3 } },
  nodes: [{ name: "n1", actors: { ingest: 1, subqueue: 1 }, http: { port: 8080 } }, { name: "n2" }],
  faultInjection: true,
  rules: validRules,
  topics: {
    demo: { channel: "nats", template: { title: "Hello {{name}}" } },
    hook: { channel: "webhook", url: "http://127.0.0.1:9/x", secret: "s".repeat(24) },
  },
};

/**
 * Runs `parse` on broken variants of `valid` and on arbitrary values: each is accepted, or refused
 * with an error of class `refusal` listing issues whose path and reason its message shows. Anything
 * else thrown fails the property. Returns how many were refused (a validator that accepts
 * everything must not pass).
 */
function refusesWithPaths(valid: Record<string, unknown>, parse: (x: unknown) => unknown, refusal: typeof RulesError | typeof ConfigError, path: RegExp): number {
  expect(() => parse(valid)).not.toThrow();
  let refused = 0;
  fc.assert(
    fc.property(fc.oneof({ weight: 4, arbitrary: mutate(valid) }, fc.anything()), (input) => {
      try {
        parse(input);
      } catch (err) {
        expect(err).toBeInstanceOf(refusal);
        const { issues, message } = err as RulesError | ConfigError;
        expect(issues.length).toBeGreaterThan(0);
        for (const i of issues) {
          expect(i.path).toMatch(path);
          expect(i.message).toMatch(/\S/);
          expect(message).toContain(`${i.path}: ${i.message}`);
        }
        refused++;
      }
    }),
    { numRuns: 400 },
  );
  return refused;
}

describe("invalid rules and configs", () => {
  it("parseRules accepts a rule or refuses it with a RulesError naming each path; it never throws anything else", () => {
    expect(refusesWithPaths(validRules, (x) => parseRules(x), RulesError, /^rules\b/)).toBeGreaterThan(200);
  });

  it("parseConfig accepts a config or throws a ConfigError naming each path; it never throws anything else", () => {
    expect(refusesWithPaths(validConfig, (x) => parseConfig(x, "/tmp"), ConfigError, /^(\(root\)|[A-Za-z$_[])/)).toBeGreaterThan(200);
  });
});
