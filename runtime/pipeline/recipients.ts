/**
 * The recipients registry: a KV bucket holding, for each recipient id, their addresses per
 * channel (email addresses, Web Push subscriptions, APNs device tokens, FCM registration tokens)
 * and the hashes of the stream tokens the operator issued them. A message's `to` names a
 * recipient; a channel that pushes to people sends to every address the recipient has for it, and
 * removes one its provider reports dead ({@link removeAddress}). Managed over HTTP
 * (`/v1/recipients/<id>`) and with `herald recipients set|get|rm|token`; both check a record the
 * same way here.
 */
import { createHash, randomBytes } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { HeraldError } from "../errors.js";
import { recipientKey } from "../names.js";

/** A browser's Web Push subscription, as `PushSubscription.toJSON()` gives it. */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** A recipient's addresses, by channel, and their stream tokens (SHA-256, hex). */
export interface Recipient {
  email?: string[];
  webpush?: WebPushSubscription[];
  apns?: string[];
  fcm?: string[];
  /** Hashes of the tokens `herald recipients token` issued: each lets its holder read this recipient's streams. */
  tokens?: string[];
}

/** The channels a recipient holds addresses for. */
export type AddressKind = "email" | "webpush" | "apns" | "fcm";
export const ADDRESS_KINDS: readonly AddressKind[] = ["email", "webpush", "apns", "fcm"];
/** One address of a kind: a string, or a Web Push subscription. */
export type Address<K extends AddressKind = AddressKind> = K extends "webpush" ? WebPushSubscription : string;

/** A recipient id: what a KV key can hold, up to 128 characters (never a ":", so "apns:…" is an address). */
const RECIPIENT_ID = /^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,127}$/;
/** One plain address (no display name, no list): see actors/pusher/channels/email.ts. */
export const EMAIL_ADDRESS = /^[^\s@<>(),;:"\\[\]]+@[^\s@<>(),;:"\\[\]]+\.[^\s@<>(),;:"\\[\]]+$/;
/** An APNs device token: hex (32 bytes today; Apple says not to rely on the length). */
export const APNS_TOKEN = /^[0-9a-fA-F]{32,400}$/;
/** An FCM registration token: URL-safe text, no spaces. */
export const FCM_TOKEN = /^[A-Za-z0-9_:.\-]{20,4096}$/;
/** base64url without padding, as a subscription's keys are. */
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
/** Most addresses one recipient may have on one channel. */
const MAX_ADDRESSES = 50;
/** Most stream tokens one recipient may hold. */
const MAX_TOKENS = 20;

/** Throws a USAGE HeraldError unless `id` can name a recipient. */
export function checkRecipientId(id: string): void {
  if (!RECIPIENT_ID.test(id) || id.endsWith(".") || id.includes("..")) {
    throw new HeraldError("USAGE", `a recipient id is 1–128 letters, digits, "_", "-", "=" or single "." (not first or last), got ${JSON.stringify(id.slice(0, 130))}`);
  }
}

/** The problem with `s` as a Web Push subscription, or undefined if it is one. */
export function webPushSubscriptionProblem(s: unknown): string | undefined {
  if (typeof s !== "object" || s === null || Array.isArray(s)) return 'a Web Push subscription is an object { "endpoint": "https://…", "keys": { "p256dh": "…", "auth": "…" } } (PushSubscription.toJSON())';
  const { endpoint, keys } = s as { endpoint?: unknown; keys?: unknown };
  if (typeof endpoint !== "string" || !/^https:\/\/[^\s]+$/.test(endpoint) || endpoint.length > 2048) return "a Web Push subscription's endpoint must be an https:// URL";
  if (typeof keys !== "object" || keys === null) return "a Web Push subscription needs keys.p256dh and keys.auth";
  const { p256dh, auth } = keys as { p256dh?: unknown; auth?: unknown };
  // p256dh: an uncompressed P-256 point (65 bytes, 87 characters); auth: 16 bytes (22 characters).
  if (typeof p256dh !== "string" || !BASE64URL.test(p256dh) || Buffer.from(p256dh, "base64url").length !== 65) return "a Web Push subscription's keys.p256dh must be the base64url of a 65-byte P-256 public key";
  if (typeof auth !== "string" || !BASE64URL.test(auth) || Buffer.from(auth, "base64url").length !== 16) return "a Web Push subscription's keys.auth must be the base64url of its 16-byte secret";
  return undefined;
}

/** Checks one channel's list of addresses; the same address twice counts once. */
function addresses(kind: AddressKind, list: unknown): unknown[] {
  const example: Record<AddressKind, string> = {
    email: "plain addresses (ada@example.com: no display name, no lists)",
    webpush: "Web Push subscriptions (PushSubscription.toJSON())",
    apns: "APNs device tokens (hex)",
    fcm: "FCM registration tokens",
  };
  if (!Array.isArray(list) || list.length > MAX_ADDRESSES) throw new HeraldError("USAGE", `"${kind}" must be a list of at most ${MAX_ADDRESSES} ${example[kind]}`);
  list.forEach((a, i) => {
    const problem =
      kind === "webpush"
        ? webPushSubscriptionProblem(a)
        : typeof a !== "string" || !(kind === "email" ? EMAIL_ADDRESS : kind === "apns" ? APNS_TOKEN : FCM_TOKEN).test(a)
          ? `must be one of ${example[kind]}`
          : undefined;
    if (problem) throw new HeraldError("USAGE", `"${kind}"[${i}] ${problem.startsWith("a ") ? `is not valid: ${problem}` : problem}`);
  });
  const seen = new Set<string>();
  return list.filter((a) => {
    const key = addressKey(a as Address);
    return seen.has(key) ? false : (seen.add(key), true);
  }).map((a) => (kind === "webpush" ? { endpoint: (a as WebPushSubscription).endpoint, keys: { p256dh: (a as WebPushSubscription).keys.p256dh, auth: (a as WebPushSubscription).keys.auth } } : a));
}

/** What identifies an address: the string, or a subscription's endpoint. */
export const addressKey = (a: Address): string => (typeof a === "string" ? a : a.endpoint);

/** The record `input` describes, checked: `{ "email": ["ada@example.com"], "apns": ["…"], … }`. */
export function parseRecipient(input: unknown): Recipient {
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new HeraldError("USAGE", 'a recipient is a JSON object such as { "email": ["ada@example.com"], "webpush": [subscription], "apns": ["token"], "fcm": ["token"] }');
  // streamTokens: what a GET shows (shownRecipient); a record read back and sent again keeps its tokens.
  const known = [...ADDRESS_KINDS, "tokens", "streamTokens"];
  const extra = Object.keys(input).filter((k) => !known.includes(k));
  if (extra.length > 0) throw new HeraldError("USAGE", `unknown field ${JSON.stringify(extra[0])} in the recipient: the registry holds "email", "webpush", "apns" and "fcm" addresses (and "tokens", which herald recipients token issues)`);
  const out: Recipient = {};
  for (const kind of ADDRESS_KINDS) {
    const list = (input as Record<string, unknown>)[kind];
    if (list !== undefined) (out as Record<string, unknown>)[kind] = addresses(kind, list);
  }
  const tokens = (input as { tokens?: unknown }).tokens;
  if (tokens !== undefined) {
    if (!Array.isArray(tokens) || tokens.length > MAX_TOKENS || !tokens.every((t) => typeof t === "string" && /^[0-9a-f]{64}$/.test(t))) {
      throw new HeraldError("USAGE", `"tokens" must be a list of at most ${MAX_TOKENS} SHA-256 hashes (hex) of issued tokens: issue one with herald recipients token ID`);
    }
    out.tokens = [...new Set(tokens as string[])];
  }
  return out;
}

/** A recipient as stored, with the KV revision an update must match. */
export async function readRecipient(kv: KV, id: string): Promise<{ recipient: Recipient; revision: number } | undefined> {
  checkRecipientId(id);
  const e = await kv.get(recipientKey(id));
  if (!e || e.operation !== "PUT") return undefined;
  try {
    return { recipient: parseRecipient(e.json()), revision: e.revision };
  } catch {
    // A record someone wrote by hand that is not one: as if absent.
    return undefined;
  }
}

export async function getRecipient(kv: KV, id: string): Promise<Recipient | undefined> {
  return (await readRecipient(kv, id))?.recipient;
}

/**
 * Stores `r` as recipient `id`'s record. Addresses replace the old ones; the issued tokens are
 * kept unless `r` names its own (a `set` does not log every browser out).
 */
export async function putRecipient(kv: KV, id: string, r: Recipient): Promise<void> {
  checkRecipientId(id);
  const record = parseRecipient(r);
  await updateRecipient(kv, id, (old) => ({ ...record, ...(record.tokens === undefined && old?.tokens ? { tokens: old.tokens } : {}) }));
}

/** Removes the recipient; false if there was none. */
export async function removeRecipient(kv: KV, id: string): Promise<boolean> {
  checkRecipientId(id);
  if ((await getRecipient(kv, id)) === undefined) return false;
  await kv.delete(recipientKey(id));
  return true;
}

/**
 * Changes recipient `id`'s record with `change` (given the record, or undefined if none; returns
 * the new one, or undefined to leave it), retrying when another writer got in between: a
 * compare-and-set on the KV revision, so a clean-up never undoes a concurrent `set`.
 */
async function updateRecipient(kv: KV, id: string, change: (old: Recipient | undefined) => Recipient | undefined): Promise<Recipient | undefined> {
  for (let attempt = 0; ; attempt++) {
    const now = await readRecipient(kv, id);
    const next = change(now?.recipient);
    if (next === undefined) return now?.recipient;
    try {
      if (now) await kv.update(recipientKey(id), JSON.stringify(next), now.revision);
      else await kv.create(recipientKey(id), JSON.stringify(next));
      return next;
    } catch (err) {
      // "wrong last sequence" / "key exists": someone wrote first; read again (a few times).
      if (attempt >= 10) throw err;
    }
  }
}

/**
 * Removes the addresses the provider reported dead from recipient `id`'s `kind` list. Returns how
 * many were removed (0 if the recipient or the addresses are already gone).
 */
export async function removeAddresses(kv: KV, id: string, kind: AddressKind, dead: readonly string[]): Promise<number> {
  const gone = new Set(dead);
  let removed = 0;
  await updateRecipient(kv, id, (old) => {
    const list = (old?.[kind] ?? []) as Address[];
    const kept = list.filter((a) => !gone.has(addressKey(a)));
    removed = list.length - kept.length;
    return removed === 0 ? undefined : { ...old, [kind]: kept };
  });
  return removed;
}

/** A recipient as shown to operators: the addresses, and how many stream tokens it holds (not their hashes). */
export function shownRecipient(r: Recipient): Omit<Recipient, "tokens"> & { streamTokens?: number } {
  const { tokens, ...addresses } = r;
  return { ...addresses, ...(tokens?.length ? { streamTokens: tokens.length } : {}) };
}

/** SHA-256 (hex) of a stream token: what the registry keeps of it. */
export const tokenHash = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex");

/**
 * Issues recipient `id` a new stream token (returned once; the registry keeps its hash) that
 * lets its holder read the recipient's `sse` streams. The oldest is dropped past {@link MAX_TOKENS}.
 */
export async function issueToken(kv: KV, id: string): Promise<string> {
  checkRecipientId(id);
  const token = `hrt_${randomBytes(24).toString("base64url")}`;
  const hash = tokenHash(token);
  await updateRecipient(kv, id, (old) => ({ ...old, tokens: [...(old?.tokens ?? []), hash].slice(-MAX_TOKENS) }));
  return token;
}

/** Withdraws every stream token of recipient `id`; how many there were. */
export async function revokeTokens(kv: KV, id: string): Promise<number> {
  let n = 0;
  await updateRecipient(kv, id, (old) => {
    n = old?.tokens?.length ?? 0;
    if (!old || n === 0) return undefined;
    const { tokens: _, ...rest } = old;
    return rest;
  });
  return n;
}
