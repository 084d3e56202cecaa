/**
 * `herald publish TOPIC`: submits one message through `<prefix>.submit` (the SOA interface), so it
 * goes through the same validation as every other ingest path and is durable when the id prints.
 * `--at` and `--in` schedule it (`deliverAt`, `delayMs`).
 */
import { errors } from "@nats-io/transport-node";
import { decodeLenient } from "../../codec/index.js";
import { errorText, HeraldError } from "../../errors.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { readJsonObject } from "../input.js";
import { parseDeliverAt, parseDuration } from "../../pipeline/schedule.js";
import { names } from "../../names.js";

export interface PublishFlags extends CommonFlags {
  data?: string;
  file?: string;
  to?: string;
  id?: string;
  /** Due time: ms since the epoch or an ISO 8601 time with an offset (`deliverAt`). */
  at?: string;
  /** Due after this long from acceptance (`delayMs`): `90s`, `5m`, `1500ms`, `2h`. */
  in?: string;
}

/** How long ingest may take to make the message durable and answer, in ms. */
const SUBMIT_TIMEOUT_MS = 10_000;

type SubmitReply = { ok: true; id: string; duplicate?: boolean } | { ok: false; error: string };

/**
 * Sends `{ topic, data, to?, id? }` to `<prefix>.submit` and prints the id ingest answers with,
 * alone on stdout so scripts can capture it. A duplicate id is noted on stderr.
 */
export async function publishCommand(topic: string | undefined, flags: PublishFlags): Promise<number> {
  if (!topic) throw new HeraldError("USAGE", 'herald publish needs a topic: herald publish TOPIC [--data JSON | --file F]');
  const data = await readJsonObject("--data", flags.data, flags.file);
  const schedule = scheduleOf(flags);
  const loaded = await loadFromFlags(flags);
  const subject = names(loaded.config.subjectPrefix).submit;
  const body = { topic, data, ...(flags.to === undefined ? {} : { to: flags.to }), ...(flags.id === undefined ? {} : { id: flags.id }), ...schedule };
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    let replyBytes: Uint8Array;
    try {
      // JSON in, JSON out: ingest answers in the format it was asked in.
      replyBytes = (await nc.request(subject, JSON.stringify(body), { timeout: SUBMIT_TIMEOUT_MS })).data;
    } catch (err) {
      const detail = isNoAnswer(err) ? "" : ` (${errorText(err)})`;
      throw new HeraldError("NO_INGEST", `no ingest actor answered on ${subject}${detail}: is the cluster running? (herald status)`);
    }
    const reply = parseReply(replyBytes, subject);
    if (!reply.ok) throw new HeraldError("REFUSED", reply.error);
    process.stdout.write(`${reply.id}\n`);
    if (reply.duplicate) process.stderr.write(`note: ${reply.id} was already queued; this submission was not queued again\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

/** `--at` as `deliverAt` (all digits: ms since the epoch; else an ISO time), `--in` as `delayMs`. */
function scheduleOf(flags: PublishFlags): { deliverAt?: number | string; delayMs?: number } {
  if (flags.at !== undefined && flags.in !== undefined) throw new HeraldError("USAGE", "herald publish: give --at or --in, not both");
  if (flags.at !== undefined) {
    const at = /^\d+$/.test(flags.at) ? Number(flags.at) : flags.at;
    const checked = parseDeliverAt(at);
    if (!checked.ok) throw new HeraldError("USAGE", `--at: ${checked.error.replace(/^"deliverAt" /, "")}`);
    return { deliverAt: at };
  }
  if (flags.in !== undefined) {
    const d = parseDuration(flags.in);
    if (!d.ok) throw new HeraldError("USAGE", `--in: ${d.error}`);
    return { delayMs: d.ms };
  }
  return {};
}

/** No subscriber (503) or no answer in time: in both cases nobody is serving ingest. */
function isNoAnswer(err: unknown): boolean {
  if (err instanceof errors.RequestError) return err.isNoResponders() || err.cause instanceof errors.TimeoutError;
  return err instanceof errors.TimeoutError || err instanceof errors.NoRespondersError;
}

function parseReply(bytes: Uint8Array, subject: string): SubmitReply {
  let reply: unknown;
  try {
    reply = decodeLenient(bytes);
  } catch (err) {
    throw new HeraldError("BAD_REPLY", `unreadable answer on ${subject}: ${errorText(err)}`);
  }
  const r = reply as Partial<{ ok: unknown; id: unknown; error: unknown; duplicate: unknown }> | null;
  if (r?.ok === true && typeof r.id === "string") return { ok: true, id: r.id, duplicate: r.duplicate === true };
  if (r?.ok === false) return { ok: false, error: typeof r.error === "string" ? r.error : "refused (no reason given)" };
  throw new HeraldError("BAD_REPLY", `unexpected answer on ${subject}: ${JSON.stringify(reply)?.slice(0, 200)}`);
}
