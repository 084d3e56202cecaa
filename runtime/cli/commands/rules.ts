/**
 * `herald rules get|set`: the retrieval rules in the rules bucket, which every sub-queue actor
 * watches, so a change takes effect on the whole cluster without a restart.
 */
import type { KV } from "@nats-io/kv";
import type { LoadedConfig } from "../../config/index.js";
import { HeraldError } from "../../errors.js";
import { currentRule, pauseInForce, writeRules, type RuleSource } from "../../rules/store.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { readJsonObject } from "../input.js";
import { openRulesBucket, requireTopic } from "../rules-bucket.js";

export interface RulesFlags extends CommonFlags {
  topic?: string;
  /** `rules get`: print JSON (boolean); `rules set`: the fields to set (a JSON object). */
  json?: string | boolean;
  file?: string;
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
  const current = await currentRule(kv, loaded.config, topic, stderrNote);
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
  const rules = await writeRules(kv, loaded.config, topic, patch, stderrNote);
  const f = (v: unknown) => (v === undefined ? "-" : String(v));
  process.stdout.write(
    `rules for ${topic ?? "default"} set: primary=${rules.primary} secondary=${rules.secondary} maxCount=${f(rules.maxCount)} maxAgeMs=${f(rules.maxAgeMs)}\n`,
  );
  return 0;
}

function stderrNote(note: string): void {
  process.stderr.write(`note: ${note}\n`);
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
  const p = await pauseInForce(kv, topic);
  if (!p) return undefined;
  return `paused (${p.scope === "all" ? "all topics" : `topic ${topic}`}${p.at === undefined ? "" : `, since ${p.at}`}; herald resume)`;
}
