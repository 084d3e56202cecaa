/**
 * Strict UTF-8 for untrusted text: a payload with invalid bytes is refused, never repaired into
 * U+FFFD, so what Herald stores and pushes is exactly what the sender wrote.
 */

/**
 * Refuses invalid bytes instead of repairing them. ignoreBOM keeps a leading U+FEFF as text: a
 * string that starts with one must round-trip intact.
 */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Strings up to this many bytes are decoded here; longer ones by the TextDecoder. */
const SHORT = 64;

/** The text of `bytes[start, end)`, or undefined when those bytes are not valid UTF-8. */
export function utf8Text(bytes: Uint8Array, start: number, end: number): string | undefined {
  if (end - start <= SHORT) return shortUtf8Text(bytes, start, end);
  try {
    return strictUtf8.decode(bytes.subarray(start, end));
  } catch {
    return undefined;
  }
}

/**
 * The same as the TextDecoder for short strings, by hand: a TextDecoder call costs more than
 * decoding a map key or a short value. Applies the rules described at {@link firstInvalidUtf8}.
 */
function shortUtf8Text(bytes: Uint8Array, start: number, end: number): string | undefined {
  let text = "";
  let i = start;
  while (i < end) {
    const b = bytes[i]!;
    if (b < 0x80) {
      text += String.fromCharCode(b);
      i++;
      continue;
    }
    const len = sequenceLength(bytes, i, end);
    if (len === 0) return undefined;
    let cp: number;
    if (len === 2) cp = ((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
    else if (len === 3) cp = ((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f);
    else cp = ((b & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f);
    text += cp < 0x10000 ? String.fromCharCode(cp) : String.fromCharCode(0xd7c0 + (cp >> 10), 0xdc00 | (cp & 0x3ff));
    i += len;
  }
  return text;
}

/**
 * Offset of the first byte that starts an invalid UTF-8 sequence in `bytes[start, end)`, relative
 * to `start`; -1 when all of it is valid. The rules are RFC 3629's (the ones a fatal TextDecoder
 * applies): no overlong forms, no surrogates (ED A0..BF), nothing above U+10FFFF, no truncation.
 * Only called once decoding has failed, to say where.
 */
export function firstInvalidUtf8(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let i = start;
  while (i < end) {
    if (bytes[i]! < 0x80) {
      i++;
      continue;
    }
    const len = sequenceLength(bytes, i, end);
    if (len === 0) return i - start;
    i += len;
  }
  return -1;
}

/**
 * Length of the valid multi-byte sequence that starts at `bytes[i]` (a byte ≥ 0x80), ending
 * before `end`; 0 when it is not one.
 */
function sequenceLength(bytes: Uint8Array, i: number, end: number): number {
  const b = bytes[i]!;
  // The allowed range of the second byte: narrower after E0, ED, F0 and F4.
  let len: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) len = 2;
  else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b === 0xe0) lo = 0xa0;
    if (b === 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b === 0xf0) lo = 0x90;
    if (b === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + len > end) return 0;
  const second = bytes[i + 1]!;
  if (second < lo || second > hi) return 0;
  for (let k = 2; k < len; k++) {
    const c = bytes[i + k]!;
    if (c < 0x80 || c > 0xbf) return 0;
  }
  return len;
}

/**
 * Length of `text` once encoded as UTF-8 (a lone surrogate counts 3, as U+FFFD would). Used only
 * for strings long enough that the budget could be at stake.
 */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}
