import { describe, expect, test } from "vitest";
import { encode } from "../runtime/codec/index.js";
import type { TopicConfig } from "../runtime/config/index.js";
import {
  CALLER_ID,
  decodeSubmission as decodeWithLimits,
  validateSubmission,
  type DataLimits,
  type SubmissionContext,
} from "../runtime/pipeline/envelope.js";
import { seededRandom } from "../runtime/rules/random.js";

const nats = (): TopicConfig => ({ channel: "nats" });
/** The config's default limits. */
const LIMITS: DataLimits = { maxPayloadBytes: 262_144, maxDepth: 32, maxValues: 100_000, maxKeys: 10_000, maxStringBytes: 262_144 };
const MAX_DATA_DEPTH = LIMITS.maxDepth;
const decodeSubmission = (bytes: Uint8Array) => decodeWithLimits(bytes, LIMITS);
const withLimits = (over: Partial<DataLimits>): DataLimits => ({ ...LIMITS, ...over });

function context(over: Partial<SubmissionContext> = {}): SubmissionContext {
  let n = 0;
  return {
    source: "submit",
    topics: { demo: nats(), alerts: nats() },
    limits: LIMITS,
    now: () => 1_700_000_000_000,
    newId: () => `01HNEWID${String(++n).padStart(18, "0")}`,
    ...over,
  };
}

/** Validates and expects a refusal; returns its error text. */
function refused(input: unknown, reason: "invalid" | "unknown-topic" = "invalid", ctx = context()): string {
  const result = validateSubmission(input, ctx);
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.envelope)}`);
  expect(result.reason).toBe(reason);
  return result.error;
}

function accepted(input: unknown, ctx = context()) {
  const result = validateSubmission(input, ctx);
  if (!result.ok) throw new Error(`expected acceptance, got: ${result.error}`);
  return result.envelope;
}

/** `{ a: { a: … } }` with `levels` objects in all (the outermost counts as 1). */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

describe("validateSubmission: what is accepted", () => {
  test("a minimal message gets an id, createdAt, source, attempts 0 and empty data", () => {
    const envelope = accepted({ topic: "demo" });
    expect(envelope).toEqual({
      id: "01HNEWID000000000000000001",
      topic: "demo",
      data: {},
      createdAt: 1_700_000_000_000,
      source: "submit",
      attempts: 0,
    });
    expect(envelope).not.toHaveProperty("to");
  });

  test("every allowed field is kept; a caller id is used as is", () => {
    const input = { topic: "alerts", to: "user-42", data: { name: "Ada", n: [1, { b: null }] }, id: "order-7:shipped.v1_x" };
    expect(accepted(input, context({ source: "http" }))).toEqual({ ...input, createdAt: 1_700_000_000_000, source: "http", attempts: 0 });
  });

  test("the topic can come from the subject, and may be repeated in the body", () => {
    const ctx = context({ topic: "demo", source: "nats" });
    expect(accepted({ data: { a: 1 } }, ctx).topic).toBe("demo");
    expect(accepted({ topic: "demo" }, ctx).topic).toBe("demo");
    expect(accepted({}, ctx).source).toBe("nats");
  });

  test("limits are inclusive: 1024-character to, 128-character id, 32 levels, data of exactly maxPayloadBytes", () => {
    expect(accepted({ topic: "demo", to: "x".repeat(1024) }).to).toHaveLength(1024);
    expect(accepted({ topic: "demo", id: "a".repeat(128) }).id).toHaveLength(128);
    expect(accepted({ topic: "demo", data: nested(MAX_DATA_DEPTH) }).data).toEqual(nested(MAX_DATA_DEPTH));
    const data = { s: "x".repeat(10) }; // {"s":"xxxxxxxxxx"} = 18 bytes
    expect(accepted({ topic: "demo", data }, context({ limits: withLimits({ maxPayloadBytes: 18 }) })).data).toBe(data);
  });
});

describe("validateSubmission: what is refused, and the error says why", () => {
  test("a message that is not an object", () => {
    expect(refused(null)).toBe("the message must be an object, got null");
    expect(refused([{ topic: "demo" }])).toBe("the message must be an object, got array");
    expect(refused("demo")).toBe('the message must be an object, got string "demo"');
    expect(refused(5)).toBe("the message must be an object, got number 5");
    expect(refused(undefined)).toBe("the message must be an object, got undefined");
    expect(refused(new Uint8Array(3))).toBe("the message must be an object, got binary");
  });

  test("fields Herald sets, and unknown fields, are named", () => {
    for (const key of ["createdAt", "attempts", "source"]) {
      expect(refused({ topic: "demo", [key]: 1 })).toBe(`"${key}" is set by Herald and cannot be submitted`);
    }
    expect(refused({ topic: "demo", recipient: "x" })).toBe('unknown field "recipient": a message has only "topic", "to", "data", "id", "deliverAt", "delayMs"');
    expect(refused(JSON.parse('{"topic":"demo","__proto__":{"x":1}}'))).toContain('unknown field "__proto__"');
  });

  test("topic: missing, wrong type, or in conflict with the subject", () => {
    expect(refused({ data: {} })).toBe('"topic" is required');
    expect(refused({ topic: "" })).toBe('"topic" is required');
    expect(refused({ topic: 7 })).toBe('"topic" must be a string, got number 7');
    const error = refused({ topic: "alerts" }, "invalid", context({ topic: "demo" }));
    expect(error).toBe('"topic" is "alerts" but the message was sent to topic "demo"');
  });

  test("an unknown topic is refused as unknown-topic, listing at most 10 known topics", () => {
    expect(refused({ topic: "nope" }, "unknown-topic")).toBe('unknown topic "nope": known topics: "demo", "alerts"');
    // Inherited names are not topics.
    for (const topic of ["__proto__", "toString", "constructor", "hasOwnProperty"]) refused({ topic }, "unknown-topic");
    const topics = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`t${i}`, nats()]));
    const error = refused({ topic: "x" }, "unknown-topic", context({ topics }));
    expect(error).toContain('"t0", "t1"');
    expect(error).toContain('"t9", … (12 in all)');
    expect(error).not.toContain('"t10"');
    expect(refused({ topic: "x" }, "unknown-topic", context({ topics: {} }))).toBe('unknown topic "x": no topics are configured');
  });

  test("to: a string of 1–1024 characters", () => {
    expect(refused({ topic: "demo", to: 42 })).toBe('"to" must be a string, got number 42');
    expect(refused({ topic: "demo", to: null })).toBe('"to" must be a string, got null');
    expect(refused({ topic: "demo", to: "" })).toBe('"to" must be 1–1024 characters, got 0');
    expect(refused({ topic: "demo", to: "x".repeat(1025) })).toBe('"to" must be 1–1024 characters, got 1025');
  });

  test("id: 1–128 characters of [A-Za-z0-9._:-]", () => {
    expect(refused({ topic: "demo", id: 12 })).toBe('"id" must be a string, got number 12');
    for (const id of ["", "a b", "a/b", "a*", "é", "x".repeat(129), "a\nb"]) {
      expect(refused({ topic: "demo", id })).toMatch(/^"id" must be 1–128 characters of letters, digits/);
    }
  });

  test("data: an object, not an array or a scalar", () => {
    expect(refused({ topic: "demo", data: [] })).toBe('"data" must be an object, got array');
    expect(refused({ topic: "demo", data: null })).toBe('"data" must be an object, got null');
    expect(refused({ topic: "demo", data: "x" })).toBe('"data" must be an object, got string "x"');
    expect(refused({ topic: "demo", data: new Date(0) })).toBe('"data" must be an object, got date');
    expect(refused({ topic: "demo", data: new Map() })).toBe('"data" must be an object, got Map');
  });

  test("data: only JSON values, named by their path", () => {
    expect(refused({ topic: "demo", data: { n: NaN } })).toBe('"data.n" must be a finite number, got NaN');
    expect(refused({ topic: "demo", data: { a: [1, Infinity] } })).toBe('"data.a[1]" must be a finite number, got Infinity');
    expect(refused({ topic: "demo", data: { u: undefined } })).toContain('"data.u" must be a JSON value (string, number, boolean, null, array or object), got undefined');
    expect(refused({ topic: "demo", data: { b: new Uint8Array(2) } })).toContain('"data.b" must be a JSON value');
    expect(refused({ topic: "demo", data: { "a b": { d: new Date() } } })).toContain('"data["a b"].d" must be a JSON value');
    expect(refused({ topic: "demo", data: { f: () => 1 } })).toContain("got function");
  });

  test("data: nested deeper than 32 levels, arrays included; a cycle stops there too", () => {
    expect(refused({ topic: "demo", data: nested(MAX_DATA_DEPTH + 1) })).toMatch(/^"data(\.a){32}" is nested deeper than 32 levels \(limits\.maxDepth\)$/);
    let deepArray: unknown = [];
    for (let i = 0; i < 40; i++) deepArray = [deepArray];
    expect(refused({ topic: "demo", data: { x: deepArray } })).toContain("is nested deeper than 32 levels");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(refused({ topic: "demo", data: cyclic })).toContain("is nested deeper than 32 levels");
  });

  test("data: __proto__, constructor and prototype keys are refused anywhere", () => {
    const proto = JSON.parse('{"a":[{"__proto__":{"polluted":true}}]}');
    expect(refused({ topic: "demo", data: proto })).toBe(`"data.a[0].__proto__": the key "__proto__" is not allowed (it could reach an object's prototype)`);
    expect(refused({ topic: "demo", data: { constructor: { prototype: 1 } } })).toContain('the key "constructor" is not allowed');
    expect(refused({ topic: "demo", data: { x: { prototype: 1 } } })).toContain('"data.x.prototype"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("a lone surrogate (JSON can spell one as \\ud800) is refused in values, keys and to: it has no UTF-8 form", () => {
    const decoded = decodeSubmission(new TextEncoder().encode('{"topic":"demo","data":{"name":"x\\ud800"}}'));
    expect(decoded.ok).toBe(true);
    expect(refused((decoded as { value: unknown }).value)).toBe(
      '"data.name" is not well-formed Unicode: it holds a lone surrogate (such as \\ud800), which has no UTF-8 form',
    );
    expect(refused({ topic: "demo", data: { ["k\udc00"]: 1 } })).toMatch(/^a key of "data" is not well-formed Unicode/);
    expect(refused({ topic: "demo", to: "\ud800", data: {} })).toMatch(/^"to" is not well-formed Unicode/);
    // A surrogate pair is fine.
    expect(accepted({ topic: "demo", data: { name: "\ud83d\ude00" } }).data).toEqual({ name: "😀" });
  });

  test("data larger than maxPayloadBytes as UTF-8 JSON: both sizes are given", () => {
    const ctx = context({ limits: withLimits({ maxPayloadBytes: 18 }) });
    expect(refused({ topic: "demo", data: { s: "x".repeat(11) } }, "invalid", ctx)).toBe(
      '"data" is 19 bytes as JSON, over the limit of 18 bytes (limits.maxPayloadBytes)',
    );
    // Bytes, not characters: "é" is 2 bytes, "😀" 4.
    expect(refused({ topic: "demo", data: { s: "é".repeat(10) } }, "invalid", ctx)).toContain('"data" is 28 bytes');
    expect(refused({ topic: "demo", data: { s: "😀" } }, "invalid", context({ limits: withLimits({ maxPayloadBytes: 11 }) }))).toContain('"data" is 12 bytes');
  });

  test("an input that throws when read is refused, not thrown", () => {
    const hostile = new Proxy({}, { ownKeys: () => { throw new Error("boom"); } });
    expect(refused(hostile)).toBe("could not read the message: boom");
    const getter = { topic: "demo", get data(): unknown { throw new Error("no data for you"); } };
    expect(refused(getter)).toBe("could not read the message: no data for you");
  });
});

describe("decodeSubmission", () => {
  const utf8 = (text: string) => new TextEncoder().encode(text);

  test("JSON when the payload starts with {, after whitespace", () => {
    expect(decodeSubmission(utf8('{"topic":"demo","data":{"name":"Ada"}}'))).toEqual({ ok: true, value: { topic: "demo", data: { name: "Ada" } } });
    expect(decodeSubmission(utf8(' \r\n\t{"a":1}'))).toEqual({ ok: true, value: { a: 1 } });
  });

  test("msgpack otherwise", () => {
    const value = { topic: "demo", to: "u1", data: { n: [1, 2.5, "x", null, true] } };
    expect(decodeSubmission(encode(value))).toEqual({ ok: true, value });
    // A msgpack scalar decodes; validateSubmission is what refuses it.
    expect(decodeSubmission(encode("hi"))).toEqual({ ok: true, value: "hi" });
  });

  test("malformed input says which format failed", () => {
    const json = decodeSubmission(utf8('{"topic": '));
    expect(json.ok).toBe(false);
    if (!json.ok) expect(json.error).toMatch(/^malformed JSON: ./);
    const msgpack = decodeSubmission(new Uint8Array([0x82, 0xa1]));
    expect(msgpack.ok).toBe(false);
    if (!msgpack.ok) expect(msgpack.error).toMatch(/^malformed msgpack: ./);
    // Plain text that is not JSON is read as msgpack and fails as such.
    const text = decodeSubmission(utf8("hello"));
    expect(text.ok).toBe(false);
  });

  test("an empty payload is an error", () => {
    expect(decodeSubmission(new Uint8Array(0))).toEqual({ ok: false, error: "empty payload: expected a JSON object or a msgpack map" });
  });

  test("decode then validate: one path for JSON and msgpack", () => {
    const ctx = context({ topic: "demo", source: "nats" });
    for (const bytes of [utf8('{"data":{"name":"Ada"},"to":"u1"}'), encode({ data: { name: "Ada" }, to: "u1" })]) {
      const decoded = decodeSubmission(bytes);
      if (!decoded.ok) throw new Error(decoded.error);
      expect(accepted(decoded.value, ctx)).toMatchObject({ topic: "demo", to: "u1", data: { name: "Ada" }, source: "nats" });
    }
  });
});

describe("never throws, always answers (random junk)", () => {
  const random = seededRandom(0x4e7a1d);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const KEYS = ["topic", "to", "data", "id", "createdAt", "__proto__", "constructor", "prototype", "name", "a", "", "{{x}}"];
  const STRINGS = ["demo", "alerts", "nope", "", "__proto__", "toString", "{{ name }}", "é😀", "\ud800", "x".repeat(2000), "ok-id_1"];

  function junk(depth: number): unknown {
    switch (int(depth > 36 ? 6 : 10)) {
      case 0: return pick([null, undefined, true, false]);
      case 1: return pick([0, -0, 1.5, -7, NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER, 1e308]);
      case 2: return pick(STRINGS);
      case 3: return pick([new Uint8Array(int(4)), new Date(int(1e12)), new Map(), () => 0, 10n]);
      case 4: return String.fromCharCode(...Array.from({ length: int(8) }, () => int(0x10000)));
      case 5: return int(2) ? STRINGS[0] : 3;
      case 6: case 7: return Array.from({ length: int(4) }, () => junk(depth + 1));
      default: {
        const out: Record<string, unknown> = int(8) ? {} : Object.create(null);
        for (let i = int(5); i > 0; i--) {
          const key = int(3) ? pick(KEYS) : String(int(100));
          // defineProperty, so "__proto__" becomes an own key as JSON.parse would make it.
          Object.defineProperty(out, key, { value: junk(depth + 1), enumerable: true, writable: true, configurable: true });
        }
        return out;
      }
    }
  }

  /** Something shaped like a submission most of the time, so the deeper checks are reached. */
  function submission(): unknown {
    if (int(4) === 0) return junk(0);
    const out: Record<string, unknown> = {};
    if (int(4)) out.topic = int(4) ? pick(["demo", "alerts"]) : junk(30);
    if (int(2)) out.to = int(3) ? pick(STRINGS) : junk(30);
    if (int(2)) out.id = int(3) ? pick(STRINGS) : junk(30);
    if (int(4)) out.data = int(6) ? junk(1) : nested(int(40) + 1);
    if (int(8) === 0) out[pick(KEYS)] = junk(30);
    return out;
  }

  function expectAnswer(input: unknown, ctx: SubmissionContext): boolean {
    const result = validateSubmission(input, ctx);
    if (result.ok) {
      const { envelope } = result;
      expect(Object.hasOwn(ctx.topics, envelope.topic)).toBe(true);
      expect(envelope.id).toMatch(CALLER_ID);
      expect(envelope.attempts).toBe(0);
      // data is JSON: it survives a round trip (up to -0, which JSON writes as 0).
      const json = JSON.stringify(envelope.data);
      expect(JSON.stringify(JSON.parse(json))).toBe(json);
    } else {
      expect(["invalid", "unknown-topic"]).toContain(result.reason);
      expect(typeof result.error).toBe("string");
      expect(result.error.length).toBeGreaterThan(0);
      expect(result.error.length).toBeLessThan(3000);
    }
    return result.ok;
  }

  test("random values and submission-shaped objects", () => {
    const ctx = context({ limits: withLimits({ maxPayloadBytes: 4096 }) });
    const subjectCtx = context({ topic: "demo", limits: withLimits({ maxPayloadBytes: 4096 }) });
    let ok = 0;
    for (let i = 0; i < 4000; i++) {
      const input = submission();
      if (expectAnswer(input, ctx)) ok++;
      expectAnswer(input, subjectCtx);
    }
    // The generator must reach acceptance too, or the deep checks were never exercised.
    expect(ok).toBeGreaterThan(100);
  });

  test("random bytes, and random values encoded as JSON and msgpack", () => {
    const ctx = context({ topic: "alerts", limits: withLimits({ maxPayloadBytes: 4096 }) });
    for (let i = 0; i < 3000; i++) {
      let bytes: Uint8Array;
      const form = int(3);
      if (form === 0) {
        bytes = Uint8Array.from({ length: int(64) }, () => int(256));
        if (int(2)) bytes[0] = pick([0x7b, 0x80, 0x81, 0x91, 0xc1, 0xd4, 0x20]);
      } else {
        const value = submission();
        try {
          bytes = form === 1 ? new TextEncoder().encode(JSON.stringify(value) ?? "") : encode(value);
        } catch {
          continue; // not encodable at all (a function, a bigint): no client could send it
        }
        if (int(5) === 0) bytes = bytes.subarray(0, int(bytes.length + 1)); // truncated in flight
      }
      const decoded = decodeSubmission(bytes);
      if (decoded.ok) expectAnswer(decoded.value, ctx);
      // One line that names what was wrong (never a stack, never a crash).
      else expect(decoded.error).toMatch(/^(malformed (JSON|msgpack)|empty payload|msgpack extension type|map keys must be strings|invalid UTF-8|nested deeper|"data" is nested deeper|more than|an? (map|object|string|map key|key|binary) )[^\n]*$/);
    }
  });

  test("deeply nested payloads do not blow the stack", () => {
    const deepJson = new TextEncoder().encode(`{"data":${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}}`);
    const decoded = decodeSubmission(deepJson);
    if (decoded.ok) expect(refused(decoded.value, "invalid", context({ topic: "demo" }))).toContain("nested deeper than 32 levels");
    else expect(decoded.error).toMatch(/^"data" is nested deeper than 32 levels \(limits\.maxDepth\)/);
    const deepMsgpack = decodeSubmission(new Uint8Array(200_000).fill(0x91));
    expect(deepMsgpack.ok).toBe(false);
  });
});
