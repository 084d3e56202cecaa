/**
 * `herald pause|resume [--topic T]`: retrieval pauses are keys in the rules bucket, so every
 * sub-queue actor sees them at once. Ingest is not affected: messages keep queueing (and forming
 * sub-queues) while paused, and nothing is dispatched until resumed.
 */
import type { KV } from "@nats-io/kv";
import { errorText, HeraldError } from "../../errors.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { openRulesBucket, requireTopic } from "../rules-bucket.js";
import { PAUSE_ALL_KEY, pauseKey } from "../../names.js";

export interface PauseFlags extends CommonFlags {
  topic?: string;
}

/** The value at a pause key; its presence is what pauses, `at` is for operators. */
export interface PauseValue {
  paused: true;
  /** ISO time the pause was set. */
  at: string;
}

/** `herald pause` (`resume: false`) or `herald resume` (`resume: true`). */
export async function pauseCommand(flags: PauseFlags, resume: boolean): Promise<number> {
  const loaded = await loadFromFlags(flags);
  requireTopic(loaded, flags.topic);
  const key = flags.topic === undefined ? PAUSE_ALL_KEY : pauseKey(flags.topic);
  const what = flags.topic === undefined ? "all topics" : `topic ${flags.topic}`;
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openRulesBucket(nc, loaded.config.subjectPrefix);
    if (!resume) {
      const value: PauseValue = { paused: true, at: new Date().toISOString() };
      await kv.put(key, JSON.stringify(value));
      process.stdout.write(`retrieval paused for ${what}\n`);
      return 0;
    }
    await kv.delete(key);
    process.stdout.write(`retrieval resumed for ${what}\n`);
    // The two kinds of pause are independent: say what still holds retrieval back.
    const still = await stillPaused(kv, flags.topic, Object.keys(loaded.config.topics));
    if (still.length > 0) process.stderr.write(`note: still paused: ${still.join(", ")}\n`);
    return 0;
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    throw new HeraldError("NATS", `could not ${resume ? "resume" : "pause"} ${what}: ${errorText(err)}`);
  } finally {
    await nc.close();
  }
}

/** Pauses that remain after resuming `topic` (or all): the global one, or the configured topics'. */
async function stillPaused(kv: KV, topic: string | undefined, topics: string[]): Promise<string[]> {
  const isSet = async (key: string) => (await kv.get(key))?.operation === "PUT";
  if (topic !== undefined) return (await isSet(PAUSE_ALL_KEY)) ? ["all topics (herald resume without --topic)"] : [];
  // Direct gets per configured topic: a keys() listing with a filter can wait forever.
  const flags = await Promise.all(topics.map((t) => isSet(pauseKey(t))));
  return topics.filter((_, i) => flags[i]).map((t) => `topic ${t} (herald resume --topic ${t})`);
}
