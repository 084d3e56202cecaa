import fc from "fast-check";
import { Packr, unpack } from "msgpackr";
import { describe, expect, test } from "vitest";
import {
  DEFAULT_BUDGETS,
  decode,
  decodeUntrusted,
  encode,
  type DecodeBudgets,
  type UntrustedResult,
} from "../runtime/codec/index.js";

const utf8 = new TextEncoder();

/** Bytes from hex text (spaces allowed) and/or numbers and byte arrays, in order. */
function bytes(...parts: (string | number | Uint8Array | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "string") {
      for (const pair of part.replace(/\s+/g, "").match(/../g) ?? []) out.push(parseInt(pair, 16));
    } else if (typeof part === "number") out.push(part);
    else out.push(...part);
  }
  return Uint8Array.from(out);
}

const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
/** A msgpack str of any width, for text the test controls. */
function mpStr(raw: Uint8Array): Uint8Array {
  if (raw.length < 32) return bytes(0xa0 | raw.length, raw);
  return raw.length < 256 ? bytes(0xd9, raw.length, raw) : bytes(0xdb, u32(raw.length), raw);
}
const json = (value: unknown) => utf8.encode(JSON.stringify(value));

function accepted(payload: Uint8Array, budgets?: Partial<DecodeBudgets>): unknown {
  const result = decodeUntrusted(payload, budgets);
  if (!result.ok) throw new Error(`expected acceptance, got: ${result.error}`);
  return result.value;
}

function refused(payload: Uint8Array, budgets?: Partial<DecodeBudgets>): string {
  const result = decodeUntrusted(payload, budgets);
  if (result.ok) throw new Error(`expected a refusal, got a ${result.format} value`);
  return result.error;
}

/** Runs `fn` and returns how long it took, in ms. */
function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** What msgpackr's encoder writes for a JSON value: the value itself, except -0 is written as 0. */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe("round trip: everything our encoder writes for JSON-like values decodes the same", () => {
  test("arbitrary JSON values, as msgpack", () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "binary" }), (value) => {
        // Wrapped: a bare 123 encodes as 0x7b, "{", which the format rule reads as JSON.
        expect(accepted(encode([value]))).toEqual([asJson(value)]);
      }),
      { numRuns: 2000 },
    );
  });

  test("arbitrary JSON objects, as JSON text", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: "binary" }), fc.jsonValue({ stringUnit: "binary" })), (value) => {
        expect(accepted(json(value))).toEqual(asJson(value));
      }),
      { numRuns: 2000 },
    );
  });

  test("strings of any Unicode code points, short and long (both sides of the ASCII fast path)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 80 }), (text) => {
        expect(accepted(encode(text))).toBe(text);
        expect(accepted(encode({ [text]: text }))).toEqual({ [text]: text });
      }),
      { numRuns: 2000 },
    );
  });

  test("a leading U+FEFF is kept, not stripped as a byte-order mark", () => {
    expect(accepted(encode("\ufeffx"))).toBe("\ufeffx");
    expect(accepted(json({ "\ufeffk": "\ufeffv" }))).toEqual({ "\ufeffk": "\ufeffv" });
  });

  test("integers and floats of every magnitude", () => {
    const number = fc.oneof(
      fc.integer(),
      fc.maxSafeInteger(),
      fc.integer({ min: -128, max: 255 }),
      fc.integer({ min: -0x8000, max: 0xffff }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
    );
    fc.assert(
      fc.property(number, (n) => {
        expect(accepted(encode([n]))).toEqual([n === 0 ? 0 : n]);
      }),
      { numRuns: 2000 },
    );
  });

  test("binary", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bin) => {
        const value = accepted(encode(bin));
        expect(value).toBeInstanceOf(Uint8Array);
        expect(Array.from(value as Uint8Array)).toEqual(Array.from(bin));
      }),
    );
  });
});

describe("msgpack number forms, written by hand (our encoder never writes some of them)", () => {
  test.each([
    ["positive fixint", "7f", 127],
    ["negative fixint", "e0", -32],
    ["uint8", "cc ff", 255],
    ["uint16", "cd ffff", 65535],
    ["uint32", "ce ffffffff", 4294967295],
    ["uint64", "cf 001fffff ffffffff", Number.MAX_SAFE_INTEGER],
    ["int8", "d0 80", -128],
    ["int16", "d1 8000", -32768],
    ["int32", "d2 80000000", -2147483648],
    ["int64", "d3 ffe00000 00000001", Number.MIN_SAFE_INTEGER],
    ["int64 -1", "d3 ffffffff ffffffff", -1],
    ["float32", "ca 3fc00000", 1.5],
    ["float64", "cb 400921fb54442d18", Math.PI],
  ])("%s", (_form, hex, expected) => {
    expect(accepted(bytes(hex))).toBe(expected);
  });

  test("64-bit integers become the nearest double, as BigInt-to-Number rounding gives", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (u, i) => {
        const buf = new Uint8Array(9);
        const view = new DataView(buf.buffer);
        buf[0] = 0xcf;
        view.setBigUint64(1, u);
        expect(accepted(buf)).toBe(Number(u));
        buf[0] = 0xd3;
        view.setBigInt64(1, i);
        expect(accepted(buf)).toBe(Number(i));
      }),
      { numRuns: 2000 },
    );
  });
});

/**
 * Structured-clone shared references: at each level, `0xd6 0x69 <id>` names the map that follows,
 * whose "a" is the next level and whose "b" is `0xd6 0x70 <id>`, a pointer to that same next level.
 * About 17 bytes a level; walking the value visits 2^levels maps.
 */
function sharedReferenceBomb(levels: number): Uint8Array {
  const parts: (number | number[])[] = [0x81, 0xa4, ...utf8.encode("data")];
  for (let i = 0; i < levels; i++) parts.push(0xd6, 0x69, u32(i), 0x82, 0xa1, 0x61);
  parts.push(0xd6, 0x69, u32(levels), 0x80);
  for (let i = levels - 1; i >= 0; i--) parts.push(0xa1, 0x62, 0xd6, 0x70, u32(i + 1));
  return bytes(...parts.map((p) => (typeof p === "number" ? [p] : p)));
}

describe("the shared-reference payload", () => {
  const levels = 24;
  const bomb = sharedReferenceBomb(levels);

  test("is refused at its first extension, in well under 50 ms", () => {
    let result: UntrustedResult | undefined;
    const ms = timed(() => (result = decodeUntrusted(bomb)));
    expect(ms).toBeLessThan(50);
    expect(result).toEqual({
      ok: false,
      format: "msgpack",
      error: expect.stringMatching(/^msgpack extension type 105 \(fixext4\) at byte 6 is not accepted: shared references/),
    });
  });

  test("is what it claims: msgpackr's plain unpack decodes it into a DAG of 2^24 paths", () => {
    expect(bomb.length).toBeLessThan(450);
    const value = unpack(bomb) as { data: Record<string, unknown> };
    // Count levels where "a" and "b" are one object: each doubles what a walk of the value visits.
    let node = value.data;
    let shared = 0;
    while (node.a !== undefined) {
      if (node.a === node.b) shared++;
      node = node.a as Record<string, unknown>;
    }
    expect(shared).toBe(levels);
  });

  test("our own trusted decode refuses it too (structuredClone: false)", () => {
    expect(() => decode(bomb)).toThrow(/Structured clone extension is disabled/);
  });
});

describe("msgpack extensions are refused, every form", () => {
  test.each([
    ["fixext1", "d4 05 00"],
    ["fixext2", "d5 05 0000"],
    ["fixext4", "d6 05 00000000"],
    ["fixext8", "d7 05 0000000000000000"],
    ["fixext16", "d8 05 00000000000000000000000000000000"],
    ["ext8", "c7 02 05 0000"],
    ["ext16", "c8 0002 05 0000"],
    ["ext32", "c9 00000002 05 0000"],
  ])("%s", (form, hex) => {
    expect(refused(bytes(hex))).toMatch(new RegExp(`^msgpack extension type 5 \\(${form}\\) at byte 0 is not accepted`));
  });

  test("inside a map, the error names where", () => {
    expect(refused(bytes("81 a1 61 d4 05 00"))).toMatch(/^msgpack extension type 5 \(fixext1\) at byte 3 /);
  });

  test("a record definition (ext 0x72), as msgpackr writes one with records on", () => {
    const recorded = new Packr({ useRecords: true }).pack({ a: 1, b: 2 });
    expect(refused(recorded)).toMatch(/^msgpack extension type 114 /);
  });

  test("a timestamp (ext -1), as msgpackr writes a Date", () => {
    const dated = new Packr({ useRecords: false }).pack(new Date(1_700_000_000_000));
    expect(refused(dated)).toMatch(/^msgpack extension type -1 /);
  });

  test("an extension head cut off before its type byte is truncated, not an extension", () => {
    expect(refused(bytes("c8 00"))).toBe("malformed msgpack: truncated at byte 2");
  });
});

/** Bytes at the edges of UTF-8's ranges, where a hand-written decoder goes wrong. */
const EDGE_BYTES = [
  0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4,
  0xf5, 0xff,
];

describe("strict UTF-8", () => {
  const invalid: [string, string][] = [
    ["a lone continuation byte", "80"],
    ["an overlong '/' (C0 AF)", "c0af"],
    ["an overlong 3-byte form (E0 80 AF)", "e080af"],
    ["a surrogate (ED A0 80)", "eda080"],
    ["a sequence cut short (E2 82)", "e282"],
    ["a code point above U+10FFFF (F4 90 80 80)", "f4908080"],
    ["a byte never used in UTF-8 (FF)", "ff"],
  ];

  test.each(invalid)("%s is refused in a msgpack string, with its offset", (_what, hex) => {
    const text = bytes("6f6b", hex);
    expect(refused(mpStr(text))).toBe("invalid UTF-8 in the string at byte 0 (byte 3)");
  });

  test.each(invalid)("%s is refused in a msgpack map key", (_what, hex) => {
    expect(refused(bytes(0x81, mpStr(bytes(hex)), 0xc0))).toBe("invalid UTF-8 in the map key at byte 1 (byte 2)");
  });

  test.each(invalid)("%s is refused in JSON", (_what, hex) => {
    expect(refused(bytes(utf8.encode('{"k":"'), hex, utf8.encode('"}')))).toBe("invalid UTF-8 in JSON payload at byte 6");
  });

  test("in a long msgpack string too (past the short-ASCII path)", () => {
    const text = bytes(utf8.encode("x".repeat(100)), "c0af");
    expect(refused(mpStr(text))).toBe("invalid UTF-8 in the string at byte 0 (byte 102)");
  });

  test("multi-byte text is accepted in all three places", () => {
    const text = "héllo 😀 日本語 🇫🇷";
    expect(accepted(mpStr(utf8.encode(text)))).toBe(text);
    expect(accepted(bytes(0x81, mpStr(utf8.encode(text)), 0xc3))).toEqual({ [text]: true });
    expect(accepted(json({ [text]: text }))).toEqual({ [text]: text });
  });

  test("a msgpack string is accepted exactly when a fatal TextDecoder accepts its bytes", () => {
    const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const text = fc.oneof(
      fc.uint8Array({ maxLength: 100 }),
      fc.string({ unit: "binary", maxLength: 40 }).map((s) => utf8.encode(s)),
      fc.array(fc.constantFrom(...EDGE_BYTES), { maxLength: 12 }).map((b) => Uint8Array.from(b)),
    );
    fc.assert(
      fc.property(text, (raw) => {
        let expected: string | undefined;
        try {
          expected = fatal.decode(raw);
        } catch {
          expected = undefined;
        }
        const result = decodeUntrusted(mpStr(raw));
        expect(result.ok ? result.value : undefined).toBe(expected);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe("msgpack maps", () => {
  test.each([
    ["an integer", "81 01 c0", "an integer at byte 1"],
    ["nil", "81 c0 c0", "nil at byte 1"],
    ["binary", "81 c4 01 61 c0", "binary at byte 1"],
    ["an array", "82 a1 61 c0 90 c0", "an array at byte 4"],
  ])("a key that is %s is refused", (_kind, hex, where) => {
    expect(refused(bytes(hex))).toBe(`map keys must be strings, got ${where}`);
  });

  test("decode to plain objects", () => {
    const value = accepted(bytes("81 a1 61 80"));
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.getPrototypeOf((value as { a: object }).a)).toBe(Object.prototype);
  });

  test('a "__proto__" key becomes an own property and leaves the prototype alone', () => {
    const value = accepted(encode(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(value, "__proto__")?.value).toEqual({ polluted: true });
    expect(value.polluted).toBeUndefined();
  });

  test("a duplicated key keeps its last value", () => {
    expect(accepted(bytes("82 a1 61 01 a1 61 02"))).toEqual({ a: 2 });
  });
});

describe("malformed msgpack", () => {
  test("an empty payload", () => {
    expect(decodeUntrusted(new Uint8Array())).toEqual({
      ok: false,
      format: "none",
      error: "empty payload: expected a JSON object or a msgpack map",
    });
  });

  test("something that is not bytes", () => {
    expect(decodeUntrusted("{}" as unknown as Uint8Array)).toEqual({
      ok: false,
      format: "none",
      error: "payload must be bytes, got string",
    });
  });

  test("the format rule reads a first byte of 0x7b as JSON, even where msgpack means 123", () => {
    expect(decodeUntrusted(bytes("7b"))).toMatchObject({ ok: false, format: "json" });
    expect(decodeUntrusted(bytes("917b"))).toEqual({ ok: true, format: "msgpack", value: [123] });
  });

  test("0xc1, the byte msgpack never uses", () => {
    expect(refused(bytes("91 c1"))).toBe("malformed msgpack: byte 0xc1 at byte 1 is never used in msgpack");
  });

  test.each([
    ["an array missing an item", "92 01"],
    ["a uint16 missing a byte", "cd 01"],
    ["a float64 missing bytes", "cb 0000"],
    ["a str8 missing its length", "d9"],
    ["a str8 shorter than it claims", "d9 05 6162"],
    ["a map missing a value", "81 a1 61"],
  ])("%s is truncated", (_what, hex) => {
    const payload = bytes(hex);
    const truncated = `truncated at byte ${payload.length}`;
    expect(refused(payload)).toMatch(new RegExp(`^malformed msgpack: (${truncated}|.*, but only \\d+ bytes? remains?)$`));
  });

  test("bytes after the value", () => {
    expect(refused(bytes("01 02"))).toBe("malformed msgpack: 1 byte after the end of the value");
    expect(refused(bytes("80 00 00"))).toBe("malformed msgpack: 2 bytes after the end of the value");
  });

  test("malformed JSON names the parser's reason, cut short", () => {
    const error = refused(utf8.encode(`{"a": ${"x".repeat(10_000)}}`));
    expect(error).toMatch(/^malformed JSON: /);
    expect(error.length).toBeLessThan(150);
  });
});

describe("claimed lengths are checked against the bytes that remain", () => {
  const unbounded = { maxValues: Infinity, maxKeys: Infinity, maxStringBytes: Infinity };

  test.each([
    ["array32", "dd ffffffff 010203", "an array of 4294967295 items at byte 0, but only 3 bytes remain"],
    ["map32", "df ffffffff 010203", "a map of 4294967295 entries at byte 0, but only 3 bytes remain"],
    ["array16 nested", "91 dc 0004 010203", "an array of 4 items at byte 1, but only 3 bytes remain"],
    ["str32", "db ffffffff 616263", "truncated at byte 8"],
    ["bin32", "c6 ffffffff 010203", "truncated at byte 8"],
  ])("%s claiming more than is there is refused at once", (_form, hex, error) => {
    let result: UntrustedResult | undefined;
    expect(timed(() => (result = decodeUntrusted(bytes(hex), unbounded)))).toBeLessThan(50);
    expect(result).toEqual({ ok: false, format: "msgpack", error: `malformed msgpack: ${error}` });
  });

  test("with default budgets, the budget refuses first", () => {
    expect(refused(bytes("df ffffffff 010203"))).toBe("a map with 4294967295 keys, over 10000 (limits.maxKeys) at byte 0");
    expect(refused(bytes("db ffffffff 616263"))).toBe(
      "a string of 4294967295 bytes, over 262144 (limits.maxStringBytes) at byte 0",
    );
  });
});

/** Payload builders for each budget, in both formats, so both are held to the same count. */
const formats = {
  msgpack: {
    /** `levels` nested maps: {a: {a: … {}}}. */
    depth: (levels: number) => bytes(...Array.from({ length: levels - 1 }, () => [0x81, 0xa1, 0x61]), [0x80]),
    /** {a: [0, 0, …]} with `count` values in all. */
    values: (count: number) => bytes("81 a1 61 dd", u32(count - 2), new Uint8Array(count - 2)),
    object: (value: object) => encode(value),
  },
  json: {
    depth: (levels: number) => utf8.encode(`${'{"a":'.repeat(levels - 1)}{}${"}".repeat(levels - 1)}`),
    values: (count: number) => utf8.encode(`{"a":[${Array(count - 2).fill(0).join(",")}]}`),
    object: (value: object) => json(value),
  },
};
const keyed = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 0]));

describe.each(Object.entries(formats))("budgets, %s", (_format, build) => {
  const d = DEFAULT_BUDGETS;

  test(`maxDepth: ${d.maxDepth} levels accepted, one more refused`, () => {
    expect(accepted(build.depth(d.maxDepth))).toBeTypeOf("object");
    expect(refused(build.depth(d.maxDepth + 1))).toMatch(/^nested deeper than 34 levels \(limits\.maxDepth\)/);
  });

  test("maxDepth given by the caller", () => {
    expect(accepted(build.depth(3), { maxDepth: 3 })).toEqual({ a: { a: {} } });
    expect(refused(build.depth(4), { maxDepth: 3 })).toMatch(/^nested deeper than 3 levels \(limits\.maxDepth\)/);
  });

  test(`maxValues: ${d.maxValues} values accepted, one more refused`, () => {
    expect(accepted(build.values(d.maxValues))).toBeTypeOf("object");
    expect(refused(build.values(d.maxValues + 1))).toBe("more than 100000 values (limits.maxValues)");
  });

  test("maxValues counts every scalar, array and map", () => {
    // 1 + 1 + 4 + 1 + 1 = 8; the last value is a scalar in the outer map, counted only as it is read.
    const value = { a: [1, "x", null, { b: true }], c: 0 };
    expect(accepted(build.object(value), { maxValues: 8 })).toEqual(value);
    expect(refused(build.object(value), { maxValues: 7 })).toBe("more than 7 values (limits.maxValues)");
  });

  test(`maxKeys: ${d.maxKeys} keys accepted, one more refused`, () => {
    expect(Object.keys(accepted(build.object(keyed(d.maxKeys))) as object)).toHaveLength(d.maxKeys);
    expect(refused(build.object(keyed(d.maxKeys + 1)))).toMatch(/with 10001 keys, over 10000 \(limits\.maxKeys\)/);
  });

  test(`maxStringBytes: ${d.maxStringBytes} bytes accepted, one more refused`, () => {
    const s = "x".repeat(d.maxStringBytes);
    expect(accepted(build.object({ s }))).toEqual({ s });
    expect(refused(build.object({ s: `${s}x` }))).toMatch(/^a string of 262145 bytes, over 262144 \(limits\.maxStringBytes\)/);
  });

  test("maxStringBytes counts UTF-8 bytes, not characters", () => {
    const budgets = { maxStringBytes: 12 };
    expect(accepted(build.object({ s: "😀😀😀" }), budgets)).toEqual({ s: "😀😀😀" });
    expect(accepted(build.object({ s: "éééééé" }), budgets)).toEqual({ s: "éééééé" });
    expect(refused(build.object({ s: "😀😀😀x" }), budgets)).toMatch(/^a string of 13 bytes, over 12 /);
    expect(refused(build.object({ s: "ééééééx" }), budgets)).toMatch(/^a string of 13 bytes, over 12 /);
  });

  test("maxStringBytes applies to keys", () => {
    expect(accepted(build.object({ abcd: 1 }), { maxStringBytes: 4 })).toEqual({ abcd: 1 });
    const error = refused(build.object({ abcde: 1 }), { maxStringBytes: 4 });
    expect(error).toMatch(/^a (map )?key of 5 bytes, over 4 \(limits\.maxStringBytes\)/);
  });
});

describe("budgets, msgpack only", () => {
  test("maxStringBytes applies to binary", () => {
    expect(accepted(encode(new Uint8Array(4)), { maxStringBytes: 4 })).toEqual(new Uint8Array(4));
    expect(refused(encode(new Uint8Array(5)), { maxStringBytes: 4 })).toBe(
      "a binary of 5 bytes, over 4 (limits.maxStringBytes) at byte 0",
    );
  });
});

describe("deep nesting never overflows the stack", () => {
  const levels = 100_000;
  const msgpack = bytes(new Uint8Array(levels).fill(0x91), [0xc0]);
  const jsonText = utf8.encode(`{"a":${"[".repeat(levels)}${"]".repeat(levels)}}`);
  const unbounded = { maxDepth: Infinity, maxValues: Infinity };

  test("100 000 nested msgpack arrays are refused at the depth budget", () => {
    expect(refused(msgpack)).toBe("nested deeper than 34 levels (limits.maxDepth) at byte 34");
  });

  test("100 000 nested JSON arrays are refused at the depth budget", () => {
    expect(refused(jsonText)).toBe("nested deeper than 34 levels (limits.maxDepth)");
  });

  test("with no depth budget at all, both still decode: no recursion anywhere", () => {
    expect(decodeUntrusted(msgpack, unbounded).ok).toBe(true);
    expect(decodeUntrusted(jsonText, unbounded).ok).toBe(true);
  });
});

describe("hostile input in general", () => {
  /** Valid encodings with a few bytes overwritten: reaches deeper into the reader than noise does. */
  const overwrites = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });
  const mutated = fc
    .tuple(fc.jsonValue({ maxDepth: 4 }), overwrites)
    .map(([value, edits]) => {
      const out = Uint8Array.from(encode(value));
      for (const [at, byte] of edits) out[at % out.length] = byte;
      return out;
    });

  test.each([
    ["random bytes", fc.uint8Array({ maxLength: 300 })],
    ["mutated encodings", mutated],
  ])("%s never make decodeUntrusted throw, and each returns within a few ms", (_what, input) => {
    let slowest = 0;
    fc.assert(
      fc.property(input, (payload) => {
        let result: UntrustedResult | undefined;
        slowest = Math.max(slowest, timed(() => (result = decodeUntrusted(payload))));
        expect(typeof result!.ok).toBe("boolean");
        if (!result!.ok) expect(result!.error).toBeTypeOf("string");
      }),
      { numRuns: 5000 },
    );
    expect(slowest).toBeLessThan(20);
  });
});
