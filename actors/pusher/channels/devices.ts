/**
 * Pushing to people: a message's `to` is a recipient id, whose addresses for the channel the
 * recipients registry holds, or one explicit address written `<channel>:<address>` (a recipient id
 * never holds a ":"). {@link pushToAddresses} sends to each address, removes from the registry the
 * ones the provider reports dead, and makes one outcome of them all, so every device channel
 * (email, webpush, apns, fcm) treats recipients the same way.
 */
import { errorText } from "../../../runtime/errors.js";
import { addressKey, type Address, type AddressKind, type Recipient } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";

/** What became of a push to one address: an {@link Outcome}, or `gone` when the provider says the address is dead. */
export type AddressOutcome = Outcome | { outcome: "gone"; reason: string };

/** The recipients registry as channels use it. */
export interface RecipientRegistry {
  /** A recipient's record; undefined if there is none. */
  get(id: string): Promise<Recipient | undefined>;
  /** Removes the given addresses (by {@link addressKey}) from a recipient's `kind` list; how many went. */
  removeAddresses(id: string, kind: AddressKind, keys: readonly string[]): Promise<number>;
}

/** How a channel reads and sends to its addresses. */
export interface AddressedSend<K extends AddressKind> {
  kind: K;
  /** The address in `text` (what follows `<kind>:` in `to`, or all of `to` if `bare` says so), or a problem. */
  parse(text: string): Address<K> | { problem: string };
  /** Whether `to` is itself an address of this kind without the prefix (a plain email address). */
  bare?(to: string): boolean;
  /** Sends to one address; never rejects. */
  send(address: Address<K>): Promise<AddressOutcome>;
  /** How an address is named in a detail or an error (a token cut short, an endpoint's origin). */
  describe(address: Address<K>): string;
}

const quote = (s: string) => JSON.stringify(s.length > 130 ? `${s.slice(0, 127)}…` : s);

/**
 * Delivers `msg` to what its `to` names on channel `how.kind`. Outcomes combine so nothing is
 * lost and nothing is retried for nothing: any `retry` retries the message (every address gets it
 * again: at least once), dead addresses are removed first either way; else `delivered` if any
 * address took it; else `delivered` nowhere if every address was dead (or there were none); else
 * the first refusal, with the provider's words.
 */
export async function pushToAddresses<K extends AddressKind>(msg: PushMessage, how: AddressedSend<K>, registry: RecipientRegistry | undefined): Promise<Outcome> {
  const { kind } = how;
  const to = msg.to;
  if (to === undefined) {
    return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} pushes by ${kind}: the message's "to" must be a recipient id or one ${kind}:<address>, got none` };
  }
  const explicit = to.startsWith(`${kind}:`) ? to.slice(kind.length + 1) : how.bare?.(to) ? to : undefined;
  if (explicit !== undefined) {
    const address = how.parse(explicit);
    if (isProblem(address)) return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: the message's "to" is not an address of channel ${kind}: ${address.problem}` };
    const o = await how.send(address);
    return o.outcome === "gone" ? { outcome: "delivered", nowhere: true, detail: `the ${kind} address ${how.describe(address)} is dead (${o.reason}): delivered nowhere` } : o;
  }
  if (to.includes(":")) {
    return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} pushes by ${kind}, but the message's "to" ${quote(to)} is neither a recipient id nor a ${kind}:<address>` };
  }
  if (!registry) return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} pushes by ${kind}: "to" names recipient ${quote(to)}, but this pusher has no recipients registry` };
  let recipient: Recipient | undefined;
  try {
    recipient = await registry.get(to);
  } catch (err) {
    return { outcome: "retry", reason: `cannot read recipient ${quote(to)} from the recipients registry: ${errorText(err)}` };
  }
  if (recipient === undefined) {
    return {
      outcome: "dead",
      reason: "rejected",
      error: `topic ${msg.topic} pushes by ${kind} to ${quote(to)}, which is not a recipient in the registry (herald recipients set ID --json '{"${kind}":[…]}'); replay the letter once it is`,
    };
  }
  const addresses = (recipient[kind] ?? []) as Address<K>[];
  if (addresses.length === 0) return { outcome: "delivered", nowhere: true, detail: `recipient ${to} has no ${kind} address: delivered nowhere` };
  const outcomes = await Promise.all(addresses.map((a) => how.send(a)));

  const gone = addresses.filter((_, i) => outcomes[i]!.outcome === "gone");
  let removed = 0;
  let cleanup = "";
  if (gone.length > 0) {
    try {
      removed = await registry.removeAddresses(to, kind, gone.map(addressKey));
    } catch (err) {
      // Not worth a retry of the push: the next push that finds it dead removes it.
      cleanup = `; removing them from the registry failed: ${errorText(err)}`;
    }
  }
  const goneNote = gone.length ? `; ${gone.length} dead (${gone.map((a) => how.describe(a)).join(", ")}) removed from recipient ${to}${cleanup}` : "";

  const retries = outcomes.filter((o): o is Extract<Outcome, { outcome: "retry" }> => o.outcome === "retry");
  if (retries.length > 0) {
    const after = Math.max(...retries.map((r) => r.retryAfterMs ?? 0));
    return { outcome: "retry", reason: `${retries[0]!.reason}${goneNote}`, ...(after > 0 ? { retryAfterMs: after } : {}) };
  }
  const delivered = outcomes.filter((o) => o.outcome === "delivered").length;
  const refused = addresses.filter((_, i) => outcomes[i]!.outcome === "dead");
  const removedField = removed > 0 ? { removed } : {};
  if (delivered > 0) {
    const refusedNote = refused.length ? `; refused: ${refused.map((a) => how.describe(a)).join(", ")}` : "";
    return { outcome: "delivered", ...removedField, detail: `pushed to ${delivered} of recipient ${to}'s ${addresses.length} ${kind} addresses${goneNote}${refusedNote}` };
  }
  const firstDead = outcomes.find((o) => o.outcome === "dead");
  if (firstDead) return firstDead.outcome === "dead" ? { ...firstDead, error: `${firstDead.error}${goneNote}` } : firstDead;
  return { outcome: "delivered", nowhere: true, ...removedField, detail: `every ${kind} address of recipient ${to} is dead${goneNote}: delivered nowhere` };
}

function isProblem(a: unknown): a is { problem: string } {
  return typeof a === "object" && a !== null && "problem" in a;
}
