/**
 * `herald recipients set|get|rm|token ID`: the recipients registry (runtime/pipeline/recipients.ts),
 * which maps a message's `to` to the recipient's addresses per channel, and the tokens that let a
 * recipient's own clients read their sse streams.
 */
import { HeraldError } from "../../errors.js";
import { names } from "../../names.js";
import { openClusterBucket } from "../../nats/buckets.js";
import { ADDRESS_KINDS, checkRecipientId, getRecipient, issueToken, parseRecipient, putRecipient, removeRecipient, revokeTokens, shownRecipient, type Recipient } from "../../pipeline/recipients.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { readJsonObject } from "../input.js";

export interface RecipientsFlags extends CommonFlags {
  /** `set`: the record (a JSON object); `get`: print JSON (boolean). */
  json?: string | boolean;
  file?: string;
  /** `token`: withdraw the recipient's tokens instead of issuing one. */
  revoke?: boolean;
}

export async function recipientsCommand(action: string | undefined, id: string | undefined, flags: RecipientsFlags): Promise<number> {
  if (id === undefined) throw new HeraldError("USAGE", `herald recipients ${action}: give the recipient's ID`);
  checkRecipientId(id);
  // Read and check the record before connecting: a typo is reported without touching NATS.
  const record = action === "set" ? parseRecipient(await readRecord(flags)) : undefined;
  const loaded = await loadFromFlags(flags);
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openClusterBucket(nc, names(loaded.config.subjectPrefix).recipientsBucket, "recipients");
    if (record) {
      await putRecipient(kv, id, record);
      process.stdout.write(`recipient ${id} set: ${counts(record)}\n`);
      return 0;
    }
    if (action === "token") {
      if (flags.revoke) {
        process.stdout.write(`recipient ${id}: ${await revokeTokens(kv, id)} stream token(s) withdrawn\n`);
        return 0;
      }
      // The token itself on stdout alone (for scripts); the registry keeps only its hash.
      process.stdout.write(`${await issueToken(kv, id)}\n`);
      process.stderr.write(`a stream token for recipient ${id}: shown once; it reads ${id}'s sse streams (?access_token=…) until withdrawn with --revoke\n`);
      return 0;
    }
    if (action === "rm") {
      if (!(await removeRecipient(kv, id))) throw new HeraldError("UNKNOWN_ID", `no recipient ${id} in the registry`);
      process.stdout.write(`recipient ${id} removed\n`);
      return 0;
    }
    const r = await getRecipient(kv, id);
    if (r === undefined) throw new HeraldError("UNKNOWN_ID", `no recipient ${id} in the registry (herald recipients set ${id} --json '{"email":["…"]}')`);
    process.stdout.write(flags.json === true ? `${JSON.stringify(shownRecipient(r), null, 2)}\n` : table(r));
    return 0;
  } finally {
    await nc.close();
  }
}

async function readRecord(flags: RecipientsFlags): Promise<Record<string, unknown>> {
  if (typeof flags.json !== "string" && flags.file === undefined) {
    throw new HeraldError("USAGE", `herald recipients set needs --json '{"email":["ada@example.com"]}' or --file F`);
  }
  return readJsonObject("--json", typeof flags.json === "string" ? flags.json : undefined, flags.file);
}

/** "2 email, 1 apns address(es)". */
function counts(r: Recipient): string {
  const parts = ADDRESS_KINDS.filter((k) => r[k]?.length).map((k) => `${r[k]!.length} ${k}`);
  return parts.length ? `${parts.join(", ")} address(es)` : "no addresses";
}

/** One line per channel: its addresses (a Web Push subscription by its endpoint). */
function table(r: Recipient): string {
  const lines = ADDRESS_KINDS.map((k) => {
    const list = (r[k] ?? []) as (string | { endpoint: string })[];
    return `${k.padEnd(8)} ${list.map((a) => (typeof a === "string" ? a : a.endpoint)).join(", ") || "-"}`;
  });
  if (r.tokens?.length) lines.push(`${"tokens".padEnd(8)} ${r.tokens.length} issued`);
  return `${lines.join("\n")}\n`;
}
