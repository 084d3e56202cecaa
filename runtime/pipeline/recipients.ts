/**
 * The recipients registry: a KV bucket holding, for each recipient id, their addresses per
 * channel. A message's `to` names a recipient; a channel that pushes to people (email today) sends
 * to every address the recipient has for it. Managed over HTTP (`/v1/recipients/<id>`) and with
 * `herald recipients set|get|rm`; both check a record the same way here.
 */
import type { KV } from "@nats-io/kv";
import { HeraldError } from "../errors.js";
import { recipientKey } from "../names.js";

/** A recipient's addresses, by channel. */
export interface Recipient {
  email?: string[];
}

/** A recipient id: what a KV key can hold, up to 128 characters. */
const RECIPIENT_ID = /^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,127}$/;
/** One plain address (no display name, no list): see actors/pusher/channels/email.ts. */
export const EMAIL_ADDRESS = /^[^\s@<>(),;:"\\[\]]+@[^\s@<>(),;:"\\[\]]+\.[^\s@<>(),;:"\\[\]]+$/;
/** Most addresses one recipient may have on one channel. */
const MAX_ADDRESSES = 50;

/** Throws a USAGE HeraldError unless `id` can name a recipient. */
export function checkRecipientId(id: string): void {
  if (!RECIPIENT_ID.test(id) || id.endsWith(".") || id.includes("..")) {
    throw new HeraldError("USAGE", `a recipient id is 1–128 letters, digits, "_", "-", "=" or single "." (not first or last), got ${JSON.stringify(id.slice(0, 130))}`);
  }
}

/** The record `input` describes, checked: `{ "email": ["ada@example.com", …] }`. */
export function parseRecipient(input: unknown): Recipient {
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new HeraldError("USAGE", 'a recipient is a JSON object such as { "email": ["ada@example.com"] }');
  const extra = Object.keys(input).filter((k) => k !== "email");
  if (extra.length > 0) throw new HeraldError("USAGE", `unknown channel ${JSON.stringify(extra[0])} in the recipient: the registry holds "email" addresses`);
  const email = (input as { email?: unknown }).email;
  if (email === undefined) return {};
  if (!Array.isArray(email) || email.length > MAX_ADDRESSES || !email.every((a) => typeof a === "string" && EMAIL_ADDRESS.test(a))) {
    throw new HeraldError("USAGE", `"email" must be a list of at most ${MAX_ADDRESSES} plain addresses (ada@example.com: no display name, no lists)`);
  }
  return { email: [...new Set(email as string[])] };
}

export async function getRecipient(kv: KV, id: string): Promise<Recipient | undefined> {
  checkRecipientId(id);
  const e = await kv.get(recipientKey(id));
  if (!e || e.operation !== "PUT") return undefined;
  try {
    return parseRecipient(e.json());
  } catch {
    // A record someone wrote by hand that is not one: as if absent.
    return undefined;
  }
}

export async function putRecipient(kv: KV, id: string, r: Recipient): Promise<void> {
  checkRecipientId(id);
  await kv.put(recipientKey(id), JSON.stringify(parseRecipient(r)));
}

/** Removes the recipient; false if there was none. */
export async function removeRecipient(kv: KV, id: string): Promise<boolean> {
  checkRecipientId(id);
  if ((await getRecipient(kv, id)) === undefined) return false;
  await kv.delete(recipientKey(id));
  return true;
}
