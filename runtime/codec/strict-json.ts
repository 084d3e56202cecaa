/**
 * JSON from untrusted clients: strict UTF-8, `JSON.parse`, then one walk that applies the same
 * budgets as the msgpack reader, so a payload is held to the same limits whichever format it uses.
 * JSON cannot express shared references, so the parsed tree is no larger than its text, and the
 * walk (an explicit stack, never recursion) visits each value once.
 */
import { overBudget, type DecodeBudgets } from "./budgets.js";
import { Refusal } from "./refusal.js";
import { firstInvalidUtf8, strictUtf8, utf8Length } from "./utf8.js";

const MAX_REASON = 120;

/** Decodes a JSON payload and checks it against `budgets`; throws a {@link Refusal} otherwise. */
export function readStrictJson(bytes: Uint8Array, budgets: DecodeBudgets): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new Refusal(at < 0 ? "invalid UTF-8 in JSON payload" : `invalid UTF-8 in JSON payload at byte ${at}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Refusal(`malformed JSON: ${reason(err)}`);
  }
  // A decoded string is never longer than its source text, so a payload within the string budget
  // cannot hold a string over it: skip measuring.
  checkBudgets(value, budgets, bytes.length > budgets.maxStringBytes);
  return value;
}

/** Throws at the first budget `root` exceeds. Depth is checked before descending. */
function checkBudgets(root: unknown, budgets: DecodeBudgets, measureStrings: boolean): void {
  const pending: unknown[] = [root];
  const depths: number[] = [1];
  let values = 1;
  while (pending.length > 0) {
    const value = pending.pop();
    const depth = depths.pop()!;
    if (typeof value === "string") {
      if (measureStrings) checkString(value, "string", budgets);
      continue;
    }
    if (typeof value !== "object" || value === null) continue;
    if (depth > budgets.maxDepth) throw new Refusal(overBudget.depth(budgets));
    if (Array.isArray(value)) {
      values += value.length;
      if (values > budgets.maxValues) throw new Refusal(overBudget.values(budgets));
      for (const child of value) {
        pending.push(child);
        depths.push(depth + 1);
      }
      continue;
    }
    const keys = Object.keys(value);
    if (keys.length > budgets.maxKeys) throw new Refusal(overBudget.keys(budgets, "an object", keys.length));
    values += keys.length;
    if (values > budgets.maxValues) throw new Refusal(overBudget.values(budgets));
    for (const key of keys) {
      if (measureStrings) checkString(key, "key", budgets);
      pending.push((value as Record<string, unknown>)[key]);
      depths.push(depth + 1);
    }
  }
}

function checkString(text: string, what: "string" | "key", budgets: DecodeBudgets): void {
  // At most 3 UTF-8 bytes per UTF-16 unit: only a long string needs measuring.
  if (text.length * 3 <= budgets.maxStringBytes) return;
  const bytes = utf8Length(text);
  if (bytes > budgets.maxStringBytes) throw new Refusal(overBudget.bytes(budgets, what, bytes));
}

/** JSON.parse's reason, cut short: V8 quotes part of the input, which is the sender's text. */
function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}
