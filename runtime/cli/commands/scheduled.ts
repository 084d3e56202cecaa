/**
 * `herald scheduled list|cancel`: the scheduled messages not yet released, read from the
 * scheduled stream (runtime/scheduled/admin.ts), and cancelling one.
 */
import { HeraldError } from "../../errors.js";
import { cancelScheduled, listScheduled, scheduledRow, ServerClock, type ScheduledRow } from "../../scheduled/index.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { parseLimit } from "../input.js";

export interface ScheduledFlags extends CommonFlags {
  topic?: string;
  json?: boolean;
  limit?: string;
}

const DEFAULT_LIMIT = 100;

/** `herald scheduled list|cancel`. */
export async function scheduledCommand(action: string | undefined, ids: string[], flags: ScheduledFlags): Promise<number> {
  if (action !== "list" && action !== "cancel") {
    throw new HeraldError("USAGE", `unknown scheduled action "${action ?? ""}": use "herald scheduled list" or "herald scheduled cancel ID"`);
  }
  if (action === "cancel" && ids.length !== 1) throw new HeraldError("USAGE", "herald scheduled cancel needs the id of one scheduled message (see herald scheduled list)");
  if (action === "list" && ids.length > 0) throw new HeraldError("USAGE", `herald scheduled list: unexpected argument "${ids[0]}"`);
  if (flags.topic !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(flags.topic)) {
    throw new HeraldError("USAGE", `--topic must be a topic name (letters, digits, "_" or "-"), got "${flags.topic}"`);
  }
  const limit = parseLimit(flags.limit, DEFAULT_LIMIT);
  const loaded = await loadFromFlags(flags);
  const { config } = loaded;
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    if (action === "list") {
      const rows = (await listScheduled(nc, config, flags.topic)).map(scheduledRow);
      list(rows, limit, flags);
      return 0;
    }
    // The due time is judged on the server's clock, not this host's (README, Clocks).
    const clock = ServerClock.overNats(nc, config.subjectPrefix, `cli-${process.pid}`);
    const { cancelled } = await cancelScheduled(nc, config, clock, ids[0]!, flags.topic);
    process.stdout.write(`cancelled ${cancelled.id} (topic ${cancelled.topic}, due ${cancelled.due})\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

function list(rows: ScheduledRow[], limit: number, flags: ScheduledFlags): void {
  const shown = rows.slice(0, limit);
  if (flags.json) process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else if (rows.length === 0) process.stdout.write(`no scheduled messages${flags.topic ? ` for topic ${flags.topic}` : ""}\n`);
  else process.stdout.write(table(shown));
  if (shown.length < rows.length) process.stderr.write(`showing the ${shown.length} due first of ${rows.length} scheduled messages (--limit N for more)\n`);
}

function table(rows: ScheduledRow[]): string {
  const header = ["ID", "TOPIC", "DUE", "TO"];
  const cells = rows.map((r) => [r.id, r.topic, r.due, r.to ?? "-"]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${[fmt(header), ...cells.map(fmt)].join("\n")}\n`;
}
