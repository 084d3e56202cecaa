import { channelsOf } from "../../config/index.js";
import { HeraldError } from "../../errors.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { names } from "../../names.js";

export interface WatchFlags extends CommonFlags {
  count?: string;
}

/**
 * `herald watch TOPIC [--count N]`: prints each message the `nats` channel pushes for TOPIC, one
 * JSON line each, until Ctrl-C (or N messages). The quickest way to see a push arrive.
 */
export async function watchCommand(topic: string | undefined, flags: WatchFlags): Promise<number> {
  if (!topic) throw new HeraldError("USAGE", "herald watch needs a TOPIC (see the topics in the config)");
  const loaded = await loadFromFlags(flags);
  const t = loaded.config.topics[topic];
  if (!t) {
    const known = Object.keys(loaded.config.topics).join(", ") || "none";
    throw new HeraldError("USAGE", `no topic "${topic}" in ${loaded.file} (topics: ${known})`);
  }
  const out = names(loaded.config.subjectPrefix).out(topic);
  const channels = channelsOf(t);
  const subjects = [...new Set(channels.flatMap((c) => (c.channel === "nats" ? [c.subject ?? out] : [])))];
  if (subjects.length === 0) {
    const kinds = [...new Set(channels.map((c) => c.channel))].join(", ");
    throw new HeraldError("USAGE", `topic "${topic}" pushes to ${kinds}, not NATS: only topics with a nats channel can be watched`);
  }
  if (subjects.length > 1) {
    throw new HeraldError("USAGE", `topic "${topic}" has nats channels on several subjects (${subjects.join(", ")}): watch one with a NATS client`);
  }
  const max = flags.count === undefined ? Infinity : Number(flags.count);
  if (!(max > 0) || !Number.isInteger(max === Infinity ? 1 : max)) {
    throw new HeraldError("USAGE", `--count must be a whole number ≥ 1, got "${flags.count}"`);
  }
  const subject = subjects[0]!;
  const nc = await connectCli(accessFor(flags, loaded));
  const sub = nc.subscribe(subject, { max: max === Infinity ? undefined : max });
  process.once("SIGINT", () => sub.unsubscribe());
  // Announce only once the server has the subscription: nothing pushed after this line is missed.
  await nc.flush();
  process.stderr.write(`watching ${subject} (Ctrl-C to stop)\n`);
  for await (const m of sub) process.stdout.write(`${new TextDecoder().decode(m.data)}\n`);
  await nc.close();
  return 0;
}
