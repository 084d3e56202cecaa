/**
 * A strict msgpack reader for payloads from untrusted clients. It accepts the msgpack core types
 * only — nil, booleans, integers, floats, str, bin, arrays and maps with string keys — and refuses
 * every extension type: shared references (0x69/0x70), record definitions (0x72), timestamps (-1)
 * and the rest. Without references nothing decoded can be reached twice, so the work done and the
 * memory held are linear in the input bytes, each read once. Nesting is followed with an explicit
 * stack, never recursion, so no input can overflow the call stack; claimed lengths are checked
 * against the bytes that remain before anything is read or built.
 */
import { overBudget, type DecodeBudgets } from "./budgets.js";
import { cachedKey } from "./key-cache.js";
import { Refusal } from "./refusal.js";
import { firstInvalidUtf8, utf8Text } from "./utf8.js";

/** Decodes the single msgpack value that is all of `bytes`; throws a {@link Refusal} otherwise. */
export function readStrictMsgpack(bytes: Uint8Array, budgets: DecodeBudgets): unknown {
  const reader = new StrictReader(bytes, budgets);
  const value = reader.readDocument();
  const trailing = bytes.length - reader.pos;
  if (trailing > 0) {
    throw new Refusal(`malformed msgpack: ${trailing} ${trailing === 1 ? "byte" : "bytes"} after the end of the value`);
  }
  return value;
}

/** An array or map being filled. */
interface Frame {
  readonly into: unknown[] | Record<string, unknown>;
  readonly isMap: boolean;
  /** Elements (array) or entries (map) still to read. */
  left: number;
  /** For a map: the key whose value is read next; undefined while a key is awaited. */
  key: string | undefined;
}

/** What {@link StrictReader.readHead} returns when it has opened a non-empty array or map. */
const OPENED = Symbol("opened");

const EXTENSION_REFUSED =
  "shared references, records, timestamps and other extensions are refused on untrusted input";

class StrictReader {
  pos = 0;
  private values = 0;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly stack: Frame[] = [];

  constructor(
    bytes: Uint8Array,
    private readonly budgets: DecodeBudgets,
  ) {
    // A plain view even when given a Buffer: Buffer#subarray builds a Buffer, far dearer than a view.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  readDocument(): unknown {
    const stack = this.stack;
    for (;;) {
      let top = stack[stack.length - 1];
      if (top !== undefined && top.isMap && top.key === undefined) {
        top.key = this.readKey();
        continue;
      }
      let value = this.readHead();
      if (value === OPENED) continue;
      // Place the value, then close every container it completes, innermost first.
      for (;;) {
        top = stack[stack.length - 1];
        if (top === undefined) return value;
        if (top.isMap) {
          setOwn(top.into as Record<string, unknown>, top.key!, value);
          top.key = undefined;
        } else (top.into as unknown[]).push(value);
        if (--top.left > 0) break;
        stack.pop();
        value = top.into;
      }
    }
  }

  /** Reads one value, or opens a container (pushing its frame) and returns {@link OPENED}. */
  private readHead(): unknown {
    if (++this.values > this.budgets.maxValues) throw new Refusal(overBudget.values(this.budgets));
    const at = this.pos;
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b <= 0x8f) return this.open(true, b & 0x0f, at);
    if (b <= 0x9f) return this.open(false, b & 0x0f, at);
    if (b <= 0xbf) return this.str(b & 0x1f, at, "string");
    switch (b) {
      case 0xc0:
        return null;
      case 0xc1:
        throw new Refusal(`malformed msgpack: byte 0xc1 at byte ${at} is never used in msgpack`);
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.u8(), at);
      case 0xc5:
        return this.bin(this.u16(), at);
      case 0xc6:
        return this.bin(this.u32(), at);
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return this.refuseExtension(b, at);
      case 0xca:
        return this.view.getFloat32(this.take(4));
      case 0xcb:
        return this.view.getFloat64(this.take(8));
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf: {
        // Two exact halves summed once: the nearest double, the same rounding JSON.parse applies.
        const p = this.take(8);
        return this.view.getUint32(p) * 0x1_0000_0000 + this.view.getUint32(p + 4);
      }
      case 0xd0:
        return this.view.getInt8(this.take(1));
      case 0xd1:
        return this.view.getInt16(this.take(2));
      case 0xd2:
        return this.view.getInt32(this.take(4));
      case 0xd3: {
        const p = this.take(8);
        return this.view.getInt32(p) * 0x1_0000_0000 + this.view.getUint32(p + 4);
      }
      case 0xd9:
        return this.str(this.u8(), at, "string");
      case 0xda:
        return this.str(this.u16(), at, "string");
      case 0xdb:
        return this.str(this.u32(), at, "string");
      case 0xdc:
        return this.open(false, this.u16(), at);
      case 0xdd:
        return this.open(false, this.u32(), at);
      case 0xde:
        return this.open(true, this.u16(), at);
      default: // 0xdf: every other byte is handled above
        return this.open(true, this.u32(), at);
    }
  }

  /** A map key: a str of any width, nothing else (so it is a key in JSON too). */
  private readKey(): string {
    const at = this.pos;
    const b = this.u8();
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f, at, "map key");
    if (b === 0xd9) return this.str(this.u8(), at, "map key");
    if (b === 0xda) return this.str(this.u16(), at, "map key");
    if (b === 0xdb) return this.str(this.u32(), at, "map key");
    throw new Refusal(`map keys must be strings, got ${kindOf(b)} at byte ${at}`);
  }

  /** Starts an array or map of `count` items; empty ones are complete values at once. */
  private open(isMap: boolean, count: number, at: number): unknown {
    const depth = this.stack.length + 1;
    if (depth > this.budgets.maxDepth) throw new Refusal(`${overBudget.depth(this.budgets)} at byte ${at}`);
    if (isMap && count > this.budgets.maxKeys) {
      throw new Refusal(`${overBudget.keys(this.budgets, "a map", count)} at byte ${at}`);
    }
    // Every item takes at least one byte (a map entry two), so a count the remaining bytes cannot
    // hold is refused before anything is built from it.
    const remaining = this.bytes.length - this.pos;
    if ((isMap ? count * 2 : count) > remaining) {
      const what = isMap ? `a map of ${count} entries` : `an array of ${count} items`;
      throw new Refusal(`malformed msgpack: ${what} at byte ${at}, but only ${bytesRemain(remaining)}`);
    }
    if (this.values + count > this.budgets.maxValues) throw new Refusal(overBudget.values(this.budgets));
    const into = isMap ? {} : [];
    if (count === 0) return into;
    this.stack.push({ into, isMap, left: count, key: undefined });
    return OPENED;
  }

  private str(length: number, at: number, what: "string" | "map key"): string {
    const start = this.takeBody(length, at, what);
    const text =
      (what === "map key" ? cachedKey(this.bytes, start, start + length) : undefined) ??
      utf8Text(this.bytes, start, start + length);
    if (text !== undefined) return text;
    const offset = firstInvalidUtf8(this.bytes, start, start + length);
    const where = offset < 0 ? `the ${what} at byte ${at}` : `the ${what} at byte ${at} (byte ${start + offset})`;
    throw new Refusal(`invalid UTF-8 in ${where}`);
  }

  private bin(length: number, at: number): Uint8Array {
    const start = this.takeBody(length, at, "binary");
    // A copy, so the value neither aliases nor pins the message buffer (Buffer#slice would alias).
    return new Uint8Array(this.bytes.subarray(start, start + length));
  }

  /** Reserves the body of a str/bin after checking its claimed length; returns where it starts. */
  private takeBody(length: number, at: number, what: "string" | "map key" | "binary"): number {
    if (length > this.budgets.maxStringBytes) {
      throw new Refusal(`${overBudget.bytes(this.budgets, what, length)} at byte ${at}`);
    }
    return this.take(length);
  }

  private refuseExtension(b: number, at: number): never {
    const form = EXTENSION_FORMS[b]!;
    // The type byte follows the head (fixext) or the head and its length field (ext8/16/32).
    const typeAt = this.pos + form.lengthBytes;
    if (typeAt >= this.bytes.length) this.truncated();
    const type = this.view.getInt8(typeAt);
    throw new Refusal(
      `msgpack extension type ${type} (${form.name}) at byte ${at} is not accepted: ${EXTENSION_REFUSED}`,
    );
  }

  /** Advances past `n` bytes and returns where they start; refuses if fewer remain. */
  private take(n: number): number {
    const p = this.pos;
    if (n > this.bytes.length - p) this.truncated();
    this.pos = p + n;
    return p;
  }

  private u8(): number {
    if (this.pos >= this.bytes.length) this.truncated();
    return this.bytes[this.pos++]!;
  }

  private u16(): number {
    return this.view.getUint16(this.take(2));
  }

  private u32(): number {
    return this.view.getUint32(this.take(4));
  }

  private truncated(): never {
    throw new Refusal(`malformed msgpack: truncated at byte ${this.bytes.length}`);
  }
}

const EXTENSION_FORMS: Record<number, { name: string; lengthBytes: number }> = {
  0xd4: { name: "fixext1", lengthBytes: 0 },
  0xd5: { name: "fixext2", lengthBytes: 0 },
  0xd6: { name: "fixext4", lengthBytes: 0 },
  0xd7: { name: "fixext8", lengthBytes: 0 },
  0xd8: { name: "fixext16", lengthBytes: 0 },
  0xc7: { name: "ext8", lengthBytes: 1 },
  0xc8: { name: "ext16", lengthBytes: 2 },
  0xc9: { name: "ext32", lengthBytes: 4 },
};

/**
 * Sets `key` as an own, enumerable property. `__proto__` needs defineProperty: plain assignment
 * would call the inherited setter and replace the object's prototype with the sender's value.
 */
function setOwn(into: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(into, key, { value, writable: true, enumerable: true, configurable: true });
  } else into[key] = value;
}

function bytesRemain(n: number): string {
  return n === 1 ? "1 byte remains" : `${n} bytes remain`;
}

/** The kind of value a head byte starts, for "map keys must be strings, got …". */
function kindOf(b: number): string {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return "an integer";
  if (b <= 0x8f || b === 0xde || b === 0xdf) return "a map";
  if (b <= 0x9f || b === 0xdc || b === 0xdd) return "an array";
  if (b === 0xc0) return "nil";
  if (b === 0xc2 || b === 0xc3) return "a boolean";
  if (b === 0xca || b === 0xcb) return "a float";
  if (b >= 0xc4 && b <= 0xc6) return "binary";
  if (b === 0xc1) return "the unused byte 0xc1";
  return "an extension";
}
