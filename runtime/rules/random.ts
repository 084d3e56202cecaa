/**
 * Small seedable random source, so a `random` retrieval order can be reproduced from `Rules.seed`.
 * Not for anything security related.
 */

/**
 * A mulberry32 generator: fast, 32-bit state, good enough spread for picking sub-queues and items.
 * @param seed any number; only its low 32 bits are used.
 * @returns a function giving numbers in [0, 1), the same sequence for the same seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A uniform index in [0, length) drawn from `random`. Clamped, so an injected source that returns
 * exactly 1 cannot index past the end.
 */
export function randomIndex(random: () => number, length: number): number {
  return Math.min(length - 1, Math.floor(random() * length));
}
