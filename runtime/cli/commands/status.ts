import type { NatsConnection } from "@nats-io/transport-node";
import { HeraldError } from "../../errors.js";
import type { ClusterStatus } from "../../supervisor/status.js";
import { gatherStatus } from "../../supervisor/cluster-status.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { renderStatus } from "../render-status.js";

export interface StatusFlags extends CommonFlags {
  json?: boolean;
  watch?: boolean;
  interval?: string;
}

/** Clears a terminal and puts the cursor top left (ANSI), so a refresh replaces the last one. */
const CLEAR = "\x1b[H\x1b[2J";

/**
 * `herald status`: gathers every supervisor's answer, the registry and the lease. `--watch` does
 * it again every `--interval` seconds until interrupted (SIGINT/SIGTERM end it with code 0).
 */
export async function statusCommand(flags: StatusFlags): Promise<number> {
  const seconds = flags.interval === undefined ? 2 : Number(flags.interval);
  if (flags.interval !== undefined && !flags.watch) throw new HeraldError("USAGE", "herald status: --interval goes with --watch");
  if (!(seconds >= 0.2 && seconds <= 3600)) throw new HeraldError("USAGE", `herald status: --interval must be seconds between 0.2 and 3600, got "${flags.interval}"`);
  const loaded = await loadFromFlags(flags);
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    if (!flags.watch) {
      const status = await gatherStatus(nc, loaded.config);
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
      return 0;
    }
    await watch(nc, loaded.config, flags.json === true, seconds * 1000);
    return 0;
  } finally {
    await nc.close();
  }
}

async function watch(nc: NatsConnection, config: Parameters<typeof gatherStatus>[1], json: boolean, everyMs: number): Promise<void> {
  let stop: () => void = () => {};
  const stopped = new Promise<void>((r) => (stop = r));
  const onSignal = () => stop();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const tty = process.stdout.isTTY === true && !json;
  try {
    for (let first = true; ; first = false) {
      const status: ClusterStatus = await gatherStatus(nc, config);
      const at = new Date().toISOString();
      if (json) process.stdout.write(`${JSON.stringify({ at, ...status })}\n`);
      else if (tty) process.stdout.write(`${CLEAR}${renderStatus(status)}\nevery ${everyMs / 1000} s, ${at} — Ctrl-C to stop\n`);
      else process.stdout.write(`${first ? "" : "\n"}— ${at}\n${renderStatus(status)}`);
      const next = new Promise<"tick">((r) => setTimeout(() => r("tick"), everyMs).unref());
      if ((await Promise.race([next, stopped.then(() => "stop" as const)])) === "stop") return;
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
