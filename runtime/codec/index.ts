/**
 * Herald's codec: msgpack for what Herald writes itself (`encode`/`decode`), and `decodeUntrusted`
 * for what any client can send — strict, budgeted, linear in the input.
 */
export { BUDGET_KEYS, DEFAULT_BUDGETS } from "./budgets.js";
export type { DecodeBudgets } from "./budgets.js";
export { decode, decodeLenient, encode, isJsonPayload } from "./msgpack.js";
export { decodeUntrusted } from "./untrusted.js";
export type { UntrustedFormat, UntrustedResult } from "./untrusted.js";
