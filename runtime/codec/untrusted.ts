/**
 * The one decoder for bytes any NATS client can write: `herald.in.<topic>`, `herald.submit`, and
 * stream content a client could forge. JSON when the first non-whitespace byte is `{`, msgpack
 * otherwise (the rule documented for `herald.in.<topic>`). Both paths are strict — no msgpack
 * extensions, no invalid UTF-8 — and held to the same {@link DecodeBudgets}, so the cost of a
 * payload is linear in its size whatever it claims. Never throws.
 */
import { resolveBudgets, type DecodeBudgets } from "./budgets.js";
import { isJsonPayload } from "./msgpack.js";
import { Refusal } from "./refusal.js";
import { readStrictJson } from "./strict-json.js";
import { readStrictMsgpack } from "./strict-msgpack.js";

export type UntrustedFormat = "json" | "msgpack";

/** A decoded payload, or the one-line reason it was refused; `format` says which reader was used. */
export type UntrustedResult =
  | { ok: true; value: unknown; format: UntrustedFormat }
  | { ok: false; error: string; format: UntrustedFormat | "none" };

/**
 * Decodes a payload from an untrusted sender under `budgets` (each missing field takes its
 * `DEFAULT_BUDGETS` value). Accepts JSON values and the msgpack core types (nil, booleans,
 * numbers, str, bin, arrays, maps with string keys); maps and objects become plain objects, bin
 * becomes a Uint8Array copy, 64-bit integers become numbers (rounded beyond 2^53, as JSON.parse
 * does). A payload is a map, and no msgpack map starts with `{`; only a bare msgpack 123 (0x7b) is
 * read as JSON by the format rule, and refused.
 */
export function decodeUntrusted(bytes: Uint8Array, budgets?: Partial<DecodeBudgets>): UntrustedResult {
  let format: UntrustedFormat | "none" = "none";
  try {
    if (!(bytes instanceof Uint8Array)) {
      return { ok: false, error: `payload must be bytes, got ${bytes === null ? "null" : typeof bytes}`, format };
    }
    if (bytes.length === 0) return { ok: false, error: "empty payload: expected a JSON object or a msgpack map", format };
    format = isJsonPayload(bytes) ? "json" : "msgpack";
    const limits = resolveBudgets(budgets);
    const value = format === "json" ? readStrictJson(bytes, limits) : readStrictMsgpack(bytes, limits);
    return { ok: true, value, format };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, error: err.message, format };
    // Not a refusal the readers meant (say, out of memory): still an answer, never a crash.
    const text = err instanceof Error ? err.message : String(err);
    return { ok: false, error: `could not decode the payload: ${text.slice(0, 200)}`, format };
  }
}
