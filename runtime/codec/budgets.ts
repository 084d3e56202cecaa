/**
 * How much an untrusted payload may make the decoder do. Each budget is named after its config key
 * so that a refusal tells the sender (and the operator) which limit it hit and where to raise it.
 */

/** Limits on one decoded payload; {@link DEFAULT_BUDGETS} holds the defaults. */
export interface DecodeBudgets {
  /**
   * Deepest nesting of arrays/maps; the top-level value is depth 1 (scalars add no depth).
   * @defaultValue 34 — an envelope is depth 1 and its `data` depth 2, so `data` may nest 32 levels.
   */
  maxDepth: number;
  /**
   * Values of any kind in the whole document: every scalar, array and map counts 1 (map keys do
   * not; {@link DecodeBudgets.maxKeys} bounds them).
   * @defaultValue 100_000
   */
  maxValues: number;
  /**
   * Keys in any one map (msgpack) or object (JSON).
   * @defaultValue 10_000
   */
  maxKeys: number;
  /**
   * Longest string, map key or binary, in bytes (UTF-8 for text).
   * @defaultValue 262_144 (256 KiB, the default `limits.maxPayloadBytes`)
   */
  maxStringBytes: number;
  /**
   * Levels above the part `limits.maxDepth` is about, so a refusal quotes the configured number:
   * an envelope's `data` starts one level down, so the caller decoding envelopes passes 1 with
   * `maxDepth = limits.maxDepth + 1`. @defaultValue 0
   */
  depthOffset?: number;
}

export const DEFAULT_BUDGETS: Readonly<DecodeBudgets> = Object.freeze({
  maxDepth: 34,
  maxValues: 100_000,
  maxKeys: 10_000,
  maxStringBytes: 262_144,
});

/** The config key of each budget, as a refusal names it. */
export const BUDGET_KEYS: Readonly<Record<Exclude<keyof DecodeBudgets, "depthOffset">, string>> = Object.freeze({
  maxDepth: "limits.maxDepth",
  maxValues: "limits.maxValues",
  maxKeys: "limits.maxKeys",
  maxStringBytes: "limits.maxStringBytes",
});

/** The defaults overlaid with what the caller gave; an `undefined` field keeps its default. */
export function resolveBudgets(budgets: Partial<DecodeBudgets> | undefined): DecodeBudgets {
  return {
    maxDepth: budgets?.maxDepth ?? DEFAULT_BUDGETS.maxDepth,
    maxValues: budgets?.maxValues ?? DEFAULT_BUDGETS.maxValues,
    maxKeys: budgets?.maxKeys ?? DEFAULT_BUDGETS.maxKeys,
    maxStringBytes: budgets?.maxStringBytes ?? DEFAULT_BUDGETS.maxStringBytes,
    depthOffset: budgets?.depthOffset ?? 0,
  };
}

/** The refusal texts, shared by the JSON and msgpack paths so both say the same thing. */
export const overBudget = {
  depth: (b: DecodeBudgets) =>
    b.depthOffset ? `"data" is nested deeper than ${b.maxDepth - b.depthOffset} levels (${BUDGET_KEYS.maxDepth})` : `nested deeper than ${b.maxDepth} levels (${BUDGET_KEYS.maxDepth})`,
  values: (b: DecodeBudgets) => `more than ${b.maxValues} values (${BUDGET_KEYS.maxValues})`,
  keys: (b: DecodeBudgets, what: "a map" | "an object", count: number) =>
    `${what} with ${count} keys, over ${b.maxKeys} (${BUDGET_KEYS.maxKeys})`,
  bytes: (b: DecodeBudgets, what: "string" | "map key" | "key" | "binary", bytes: number) =>
    `a ${what} of ${bytes} bytes, over ${b.maxStringBytes} (${BUDGET_KEYS.maxStringBytes})`,
};
