/**
 * The data plane's own msgpack codec, for bytes Herald wrote itself. Payloads from clients go
 * through `decodeUntrusted` instead (untrusted.ts), which refuses what this codec would accept.
 */
import { Packr } from "msgpackr";

// One shared packer: records mode off so any msgpack client in any language can read our payloads.
// structuredClone off: even bytes we believe are ours must never expand shared references
// (msgpackr honours ext 0x69/0x70 unless told not to, and a few such bytes can describe a value
// exponentially larger than themselves).
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", structuredClone: false });

/** Encodes a value as msgpack (the data plane's wire format). */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack; throws on malformed input. */
export function decode<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

const utf8 = new TextDecoder();

/** True when a payload is JSON rather than msgpack: its first non-whitespace byte is `{`. */
export function isJsonPayload(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return b === 0x7b;
  return false;
}

/**
 * Decodes a payload published by any client: JSON when it starts with `{` (after whitespace),
 * msgpack otherwise. Throws with the reason when neither parses. Lenient: invalid UTF-8 becomes
 * U+FFFD and msgpack extensions are decoded; `decodeUntrusted` is the strict form.
 */
export function decodeLenient<T = unknown>(bytes: Uint8Array): T {
  if (isJsonPayload(bytes)) return JSON.parse(utf8.decode(bytes)) as T;
  return decode<T>(bytes);
}
