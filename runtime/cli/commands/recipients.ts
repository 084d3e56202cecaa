/**
 * `herald recipients set|get|rm ID`: the recipients registry (runtime/pipeline/recipients.ts),
 * which maps a message's `to` to the recipient's addresses per channel.
 */
import { HeraldError } from "../../errors.js";
import { names } from "../../names.js";
import { openClusterBucket } from "../../nats/buckets.js";
import { checkRecipientId, getRecipient, parseRecipient, putRecipient, removeRecipient } from "../../pipeline/recipients.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { readJsonObject } from "../input.js";

export interface RecipientsFlags extends CommonFlags {
  /** `set`: the record (a JSON object); `get`: print JSON (boolean). */
  json?: string | boolean;
  file?: string;
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
      process.stdout.write(`recipient ${id} set: ${(record.email ?? []).length} email address(es)\n`);
      return 0;
    }
    if (action === "rm") {
      if (!(await removeRecipient(kv, id))) throw new HeraldError("UNKNOWN_ID", `no recipient ${id} in the registry`);
      process.stdout.write(`recipient ${id} removed\n`);
      return 0;
    }
    const r = await getRecipient(kv, id);
    if (r === undefined) throw new HeraldError("UNKNOWN_ID", `no recipient ${id} in the registry (herald recipients set ${id} --json '{"email":["…"]}')`);
    process.stdout.write(flags.json === true ? `${JSON.stringify(r, null, 2)}\n` : `email  ${(r.email ?? []).join(", ") || "-"}\n`);
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
