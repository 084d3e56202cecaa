import { decode, encode } from "../../codec/index.js";
import { HeraldError } from "../../errors.js";
import type { ControlReply, ControlRequest } from "../../supervisor/supervisor.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { names } from "../../names.js";

export interface FaultFlags extends CommonFlags {
  node?: string;
  actor?: string;
}

/**
 * `herald fault crash-actor|hang-actor --node N --actor ID`: fault drills. crash-actor kills the
 * thread with an uncaught error; hang-actor blocks its event loop, which only the ping timeout
 * can detect.
 */
export async function faultCommand(action: string | undefined, flags: FaultFlags): Promise<number> {
  if (action !== "crash-actor" && action !== "hang-actor") {
    throw new HeraldError("USAGE", `unknown fault "${action ?? ""}": the drills are "herald fault crash-actor|hang-actor --node NAME --actor ID"`);
  }
  if (!flags.node || !flags.actor) {
    throw new HeraldError("USAGE", `herald fault ${action} needs --node NAME and --actor ID (see herald status for actor ids)`);
  }
  const loaded = await loadFromFlags(flags);
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const req: ControlRequest = { cmd: action, actor: flags.actor };
    let reply: ControlReply;
    try {
      const msg = await nc.request(names(loaded.config.subjectPrefix).ctl(flags.node), encode(req), { timeout: 5000 });
      reply = decode<ControlReply>(msg.data);
    } catch {
      throw new HeraldError("NODE_UNREACHABLE", `node ${flags.node} did not answer: is it running? (herald status)`);
    }
    if (!reply.ok) throw new HeraldError("FAULT_REFUSED", reply.error);
    process.stdout.write(`${reply.detail ?? "done"}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
