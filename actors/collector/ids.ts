/**
 * Message ids of collected rows and messages. They are derived, not random: collecting the same
 * row version twice (a tick retried, a new master resuming from the last checkpoint) yields the same
 * id, so the queue's deduplication (`Nats-Msg-Id`, within `pipeline.duplicateWindowMs`) drops the
 * second copy; an updated row has a new updated_at, hence a new id, and is a new message.
 *
 * The shape is a ULID's (26 Crockford base32 characters): the first 10 encode the source time in
 * ms, so ids sort by when the source wrote the row; the last 16 are 80 bits of a SHA-256 of the
 * collector's source name and the item's identity. They pass the caller-id check of envelope.ts.
 */
import { createHash } from "node:crypto";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const MAX_TIME = 2 ** 48 - 1;

/**
 * The id of one collected item.
 * @param source the envelope source, `collector:<name>` (two collectors on one table differ).
 * @param identity what makes the item version unique in its source: PostgreSQL `[key, updated_at]`
 *   (text forms, microseconds kept); HTTP the message id and version, or its position.
 * @param timeMs source time in ms since epoch; absent or invalid: 0.
 */
export function collectedId(source: string, identity: readonly string[], timeMs?: number): string {
  const digest = createHash("sha256").update(JSON.stringify([source, ...identity])).digest();
  return encodeTime(timeMs) + encodeBits(digest, 80);
}

function encodeTime(timeMs: number | undefined): string {
  let t = timeMs !== undefined && Number.isFinite(timeMs) ? Math.min(MAX_TIME, Math.max(0, Math.floor(timeMs))) : 0;
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  return out;
}

/** The first `bits` bits of `bytes` (a multiple of 5), in Crockford base32. */
function encodeBits(bytes: Uint8Array, bits: number): string {
  let out = "";
  for (let bit = 0; bit < bits; bit += 5) {
    const byte = bit >> 3;
    const word = ((bytes[byte]! << 8) | (bytes[byte + 1] ?? 0)) >> (11 - (bit & 7));
    out += CROCKFORD[word & 31];
  }
  return out;
}
