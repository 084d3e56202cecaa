/**
 * Recently seen short ASCII map keys, so that a key repeated across payloads (envelope fields,
 * the keys of every record in an array) comes back as the same string each time. V8 stores a
 * property much faster under a string it has already internalized than under a freshly built
 * one; this is most of what keeps the strict reader near msgpackr's speed. A fixed table, so its
 * memory is bounded whatever senders do; a collision only costs a miss.
 */

const SLOTS = 4096;
const MAX_KEY_BYTES = 16;
const table: (string | undefined)[] = new Array(SLOTS).fill(undefined);

/**
 * The key `bytes[start, end)` when it is short ASCII, from the table when seen before;
 * undefined when it is not short ASCII (the caller decodes it the general way).
 */
export function cachedKey(bytes: Uint8Array, start: number, end: number): string | undefined {
  const length = end - start;
  if (length > MAX_KEY_BYTES) return undefined;
  let hash = length;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c >= 0x80) return undefined;
    hash = (Math.imul(hash, 31) + c) | 0;
  }
  const slot = (hash ^ (hash >>> 12)) & (SLOTS - 1);
  const seen = table[slot];
  if (seen !== undefined && seen.length === length && matches(seen, bytes, start)) return seen;
  let key = "";
  for (let i = start; i < end; i++) key += String.fromCharCode(bytes[i]!);
  table[slot] = key;
  return key;
}

function matches(text: string, bytes: Uint8Array, start: number): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}
