/**
 * `herald pause|resume [--topic T]`: retrieval pauses are keys in the rules bucket, so every
 * sub-queue actor sees them at once. Ingest is not affected: messages keep queueing (and forming
 * sub-queues) while paused, and nothing is dispatched until resumed.
 */
import { errorText, HeraldError } from "../../errors.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { openRulesBucket, requireTopic } from "../rules-bucket.js";
import { pausesLeft, setPaused } from "../../rules/store.js";

export interface PauseFlags extends CommonFlags {
  topic?: string;
}


/** `herald pause` (`resume: false`) or `herald resume` (`resume: true`). */
export async function pauseCommand(flags: PauseFlags, resume: boolean): Promise<number> {
  const loaded = await loadFromFlags(flags);
  requireTopic(loaded, flags.topic);
  const what = flags.topic === undefined ? "all topics" : `topic ${flags.topic}`;
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openRulesBucket(nc, loaded.config.subjectPrefix);
    await setPaused(kv, flags.topic, !resume);
    if (!resume) {
      process.stdout.write(`retrieval paused for ${what}\n`);
      return 0;
    }
    process.stdout.write(`retrieval resumed for ${what}\n`);
    // The two kinds of pause are independent: say what still holds retrieval back.
    const still = await pausesLeft(kv, flags.topic, Object.keys(loaded.config.topics));
    if (still.length > 0) process.stderr.write(`note: still paused: ${still.join(", ")}\n`);
    return 0;
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    throw new HeraldError("NATS", `could not ${resume ? "resume" : "pause"} ${what}: ${errorText(err)}`);
  } finally {
    await nc.close();
  }
}
