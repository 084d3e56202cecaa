/**
 * `herald rules get|set`: the retrieval rules in the rules bucket, which every sub-queue actor
 * watches, so a change takes effect on the whole cluster without a restart.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { LoadedConfig } from "../../config/index.js";
import { HeraldError } from "../../errors.js";
import { parseRules, RulesError } from "../../rules/schema.js";
import type { Rules } from "../../rules/types.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { readJsonObject } from "../input.js";
import { openRulesBucket, requireTopic } from "../rules-bucket.js";
import { PAUSE_ALL_KEY, RULES_DEFAULT_KEY, pauseKey, rulesKey } from "../../names.js";

export interface RulesFlags extends CommonFlags {
  topic?: string;
  /** `rules get`: print JSON (boolean); `rules set`: the fields to set (a JSON object). */
  json?: string | boolean;
  file?: string;
}

/** Where the rule in force comes from: the topic's key, the `default` key, or the config. */
type RuleSource = "topic" | "default" | "config";

interface CurrentRule {
  value: Record<string, unknown>;
  from: RuleSource;
  /** Revision of the key being written (the topic's, or `default`), for compare-and-set. */
  revision: number | null;
}

/** `herald rules get` / `herald rules set`. */
export async function rulesCommand(action: string | undefined, flags: RulesFlags): Promise<number> {
  if (action !== "get" && action !== "set") {
    throw new HeraldError("USAGE", `unknown rules action "${action ?? ""}": use "herald rules get" or "herald rules set"`);
  }
  const loaded = await loadFromFlags(flags);
  requireTopic(loaded, flags.topic);
  // Read the input before connecting: a typo is reported without touching NATS.
  const patch = action === "set" ? await readPatch(flags) : undefined;
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openRulesBucket(nc, loaded.config.subjectPrefix);
    if (patch) return await setRules(kv, loaded, flags.topic, patch);
    return await getRules(kv, loaded, flags.topic, flags.json === true);
  } finally {
    await nc.close();
  }
}

async function readPatch(flags: RulesFlags): Promise<Record<string, unknown>> {
  if (typeof flags.json !== "string" && flags.file === undefined) {
    throw new HeraldError("USAGE", `herald rules set needs --json '{"primary":"lifo",…}' or --file F`);
  }
  return readJsonObject("--json", typeof flags.json === "string" ? flags.json : undefined, flags.file);
}

async function getRules(kv: KV, loaded: LoadedConfig, topic: string | undefined, json: boolean): Promise<number> {
  const current = await currentRule(kv, loaded, topic);
  const note = describeSource(topic, current.from);
  if (json) {
    // stdout is the rule alone, so it can be edited and fed back with `rules set --file`.
    process.stdout.write(`${JSON.stringify(current.value, null, 2)}\n`);
    process.stderr.write(`${note}\n`);
    return 0;
  }
  const paused = await pausedBy(kv, topic);
  process.stdout.write(`${note}\n${summarize(current.value)}retrieval  ${paused ?? "running"}\n`);
  return 0;
}

async function setRules(kv: KV, loaded: LoadedConfig, topic: string | undefined, patch: Record<string, unknown>): Promise<number> {
  const key = topic === undefined ? RULES_DEFAULT_KEY : rulesKey(topic);
  // Compare-and-set on the key's revision: two concurrent merges must not lose one another's fields.
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await currentRule(kv, loaded, topic);
    const merged: Record<string, unknown> = { ...current.value, ...patch };
    // null removes a field (e.g. {"maxCount": null} to keep only the time limit).
    for (const [field, value] of Object.entries(patch)) if (value === null) delete merged[field];
    let rules: Rules;
    try {
      rules = parseRules(merged, "rules");
    } catch (err) {
      if (err instanceof RulesError) {
        const sep = err.message.includes("\n") ? "\n" : "; ";
        throw new HeraldError("RULES_INVALID", `${err.message}${sep}nothing was changed`);
      }
      throw err;
    }
    try {
      if (current.revision === null) await kv.create(key, JSON.stringify(rules));
      else await kv.update(key, JSON.stringify(rules), current.revision);
    } catch (err) {
      if (isWrongRevision(err)) continue;
      throw err;
    }
    const f = (v: unknown) => (v === undefined ? "-" : String(v));
    process.stdout.write(
      `rules for ${topic ?? "default"} set: primary=${rules.primary} secondary=${rules.secondary} maxCount=${f(rules.maxCount)} maxAgeMs=${f(rules.maxAgeMs)}\n`,
    );
    return 0;
  }
  throw new HeraldError("RULES_BUSY", `the rule at key ${key} kept changing while it was being set: try again`);
}

/**
 * The rule in force for `topic` (or the default): the topic's key, else `default`, else the config
 * (the bucket is seeded from it on first start, so this only shows before that).
 */
async function currentRule(kv: KV, loaded: LoadedConfig, topic: string | undefined): Promise<CurrentRule> {
  const own = await readJson(kv, topic === undefined ? RULES_DEFAULT_KEY : rulesKey(topic));
  if (own.value) return { value: own.value, from: topic === undefined ? "default" : "topic", revision: own.revision };
  if (topic !== undefined) {
    const def = await readJson(kv, RULES_DEFAULT_KEY);
    if (def.value) return { value: def.value, from: "default", revision: own.revision };
  }
  const configured = (topic === undefined ? undefined : loaded.config.topics[topic]?.rules) ?? loaded.config.rules;
  return { value: { ...configured }, from: "config", revision: own.revision };
}

/** A key's JSON object, or none (absent, deleted, or not a JSON object: noted on stderr). */
async function readJson(kv: KV, key: string): Promise<{ value?: Record<string, unknown>; revision: number | null }> {
  const entry = await kv.get(key);
  if (!entry) return { revision: null };
  if (entry.operation !== "PUT") return { revision: entry.revision };
  try {
    const value: unknown = entry.json();
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return { value: value as Record<string, unknown>, revision: entry.revision };
  } catch {
    // Reported below, like any other value that is not an object.
  }
  process.stderr.write(`note: the value at key ${key} is not a JSON object; ignoring it\n`);
  return { revision: entry.revision };
}

function describeSource(topic: string | undefined, from: RuleSource): string {
  const subject = topic === undefined ? "default rules" : `rules for topic ${topic}`;
  if (from === "topic") return `${subject} (its own rule)`;
  if (from === "default") return topic === undefined ? `${subject}` : `${subject}: the default rule (the topic has none of its own)`;
  return `${subject}: from the config (the rules bucket holds none yet)`;
}

/** A readable summary: base schemes and limits, then each override on one line. */
function summarize(rule: Record<string, unknown>): string {
  const lines = [
    `primary    ${String(rule.primary ?? "-").padEnd(8)}(order inside a sub-queue)`,
    `secondary  ${String(rule.secondary ?? "-").padEnd(8)}(order in which sub-queues are chosen)`,
    `maxCount   ${String(rule.maxCount ?? "-")}`,
    `maxAgeMs   ${String(rule.maxAgeMs ?? "-")}`,
  ];
  if (rule.seed !== undefined) lines.push(`seed       ${String(rule.seed)}`);
  for (const [kind, list] of [["calendar", rule.calendar], ["load", rule.load]] as const) {
    if (!Array.isArray(list) || list.length === 0) continue;
    lines.push(`${kind.padEnd(10)} ${list.length} ${list.length === 1 ? "entry" : "entries"} (first match wins)`);
    list.forEach((entry, i) => lines.push(`  ${i + 1}. ${JSON.stringify(entry)}`));
  }
  return `${lines.join("\n")}\n`;
}

/** "paused (all topics, since …)" when retrieval of `topic` is paused, else undefined. */
async function pausedBy(kv: KV, topic: string | undefined): Promise<string | undefined> {
  const keys = topic === undefined ? [PAUSE_ALL_KEY] : [PAUSE_ALL_KEY, pauseKey(topic)];
  for (const key of keys) {
    const e = await kv.get(key);
    if (e?.operation !== "PUT") continue;
    let at = "";
    try {
      const v = e.json<{ at?: unknown }>();
      if (typeof v.at === "string") at = `, since ${v.at}`;
    } catch {
      // The key's presence is what pauses; its content is only informative.
    }
    return `paused (${key === PAUSE_ALL_KEY ? "all topics" : `topic ${topic}`}${at}; herald resume)`;
  }
  return undefined;
}

function isWrongRevision(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
