/**
 * The rules bucket's contents as Herald reads and writes them — the rule in force for a topic, a
 * validated merge into it, and retrieval pauses — shared by the CLI (`herald rules`, `pause`,
 * `resume`) and the node's HTTP API, so both refuse the same input with the same words.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { HeraldConfig } from "../config/index.js";
import { HeraldError } from "../errors.js";
import { PAUSE_ALL_KEY, RULES_DEFAULT_KEY, pauseKey, rateLimitKey, rulesKey } from "../names.js";
import { rateLimitSchema } from "../config/schema.js";
import { parseRules, RulesError } from "./schema.js";
import type { Rules } from "./types.js";

/** Where the rule in force comes from: the topic's key, the `default` key, or the config. */
export type RuleSource = "topic" | "default" | "config";

export interface CurrentRule {
  value: Record<string, unknown>;
  from: RuleSource;
  /** Revision of the key being written (the topic's, or `default`), for compare-and-set. */
  revision: number | null;
}

/** The value at a pause key; its presence is what pauses, `at` is for operators. */
export interface PauseValue {
  paused: true;
  /** ISO time the pause was set. */
  at: string;
}

/** A pause that holds a topic's retrieval: of all topics, or of the topic itself. */
export interface PauseInForce {
  scope: "all" | "topic";
  /** ISO time it was set, when the key says. */
  at?: string;
}

/** Told of a key whose value is not a JSON object (it is ignored). */
export type NoteFn = (note: string) => void;

/**
 * The rule in force for `topic` (or the default): the topic's key, else `default`, else the config
 * (the bucket is seeded from it on first start, so this only shows before that).
 */
export async function currentRule(kv: KV, config: HeraldConfig, topic: string | undefined, note: NoteFn = () => {}): Promise<CurrentRule> {
  const own = await readJson(kv, topic === undefined ? RULES_DEFAULT_KEY : rulesKey(topic), note);
  if (own.value) return { value: own.value, from: topic === undefined ? "default" : "topic", revision: own.revision };
  if (topic !== undefined) {
    const def = await readJson(kv, RULES_DEFAULT_KEY, note);
    if (def.value) return { value: def.value, from: "default", revision: own.revision };
  }
  const configured = (topic === undefined ? undefined : config.topics[topic]?.rules) ?? config.rules;
  return { value: { ...configured }, from: "config", revision: own.revision };
}

/**
 * Merges `patch` over the rule in force for `topic` (a null field is removed), validates the
 * result and stores it under the topic's key (or `default`), by compare-and-set so two concurrent
 * merges do not lose one another's fields. An invalid result is refused with the reason and
 * "nothing was changed" (HeraldError RULES_INVALID); the stored rule stays.
 */
export async function writeRules(kv: KV, config: HeraldConfig, topic: string | undefined, patch: Record<string, unknown>, note: NoteFn = () => {}): Promise<Rules> {
  const key = topic === undefined ? RULES_DEFAULT_KEY : rulesKey(topic);
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await currentRule(kv, config, topic, note);
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
    return rules;
  }
  throw new HeraldError("RULES_BUSY", `the rule at key ${key} kept changing while it was being set: try again`);
}

/** The pause holding retrieval of `topic` (or of all topics), if any. */
export async function pauseInForce(kv: KV, topic: string | undefined): Promise<PauseInForce | undefined> {
  const keys = topic === undefined ? [PAUSE_ALL_KEY] : [PAUSE_ALL_KEY, pauseKey(topic)];
  for (const key of keys) {
    const e = await kv.get(key);
    if (e?.operation !== "PUT") continue;
    let at: string | undefined;
    try {
      const v = e.json<{ at?: unknown }>();
      if (typeof v.at === "string") at = v.at;
    } catch {
      // The key's presence is what pauses; its content is only informative.
    }
    return { scope: key === PAUSE_ALL_KEY ? "all" : "topic", ...(at === undefined ? {} : { at }) };
  }
  return undefined;
}

/** Pauses (`paused: true`) or resumes retrieval of `topic`, or of all topics. */
export async function setPaused(kv: KV, topic: string | undefined, paused: boolean): Promise<void> {
  const key = topic === undefined ? PAUSE_ALL_KEY : pauseKey(topic);
  if (!paused) {
    await kv.delete(key);
    return;
  }
  const value: PauseValue = { paused: true, at: new Date().toISOString() };
  await kv.put(key, JSON.stringify(value));
}

/** Pauses that remain after resuming `topic` (or all): the global one, or the configured topics'. */
export async function pausesLeft(kv: KV, topic: string | undefined, topics: string[]): Promise<string[]> {
  const isSet = async (key: string) => (await kv.get(key))?.operation === "PUT";
  if (topic !== undefined) return (await isSet(PAUSE_ALL_KEY)) ? ["all topics (herald resume without --topic)"] : [];
  // Direct gets per configured topic: a keys() listing with a filter can wait forever.
  const flags = await Promise.all(topics.map((t) => isSet(pauseKey(t))));
  return topics.filter((_, i) => flags[i]).map((t) => `topic ${t} (herald resume --topic ${t})`);
}

/** A key's JSON object, or none (absent, deleted, or not a JSON object: `note` is told). */
async function readJson(kv: KV, key: string, note: NoteFn): Promise<{ value?: Record<string, unknown>; revision: number | null }> {
  const entry = await kv.get(key);
  if (!entry) return { revision: null };
  if (entry.operation !== "PUT") return { revision: entry.revision };
  try {
    const value: unknown = entry.json();
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return { value: value as Record<string, unknown>, revision: entry.revision };
  } catch {
    // Reported below, like any other value that is not an object.
  }
  note(`the value at key ${key} is not a JSON object; ignoring it`);
  return { revision: entry.revision };
}

function isWrongRevision(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** A topic's rate limit: pushes per second cluster-wide and the burst allowed. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** `{ perSecond, burst? }` checked, burst defaulted (perSecond rounded up); a USAGE error says what is wrong. */
export function parseRateLimit(input: unknown, where = "rateLimit"): RateLimit {
  const r = rateLimitSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HeraldError("USAGE", `${where}${issue.path.length ? `.${issue.path.join(".")}` : ""} ${issue.message}: give { "perSecond": 50, "burst": 10 }`);
  }
  return { perSecond: r.data.perSecond, burst: r.data.burst ?? Math.max(1, Math.ceil(r.data.perSecond)) };
}

/** The limit a stored value says: a limit, `null` (explicitly none), or undefined when unreadable. */
export function storedRateLimit(text: string): RateLimit | null | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value === null ? null : parseRateLimit(value);
  } catch {
    return undefined;
  }
}

/**
 * The rate limit in force for `topic`: the bucket's (seeded from the config on first start,
 * changed by `herald ratelimit`), else the config's; null when there is none.
 */
export async function currentRateLimit(kv: KV, config: HeraldConfig, topic: string): Promise<{ limit: RateLimit | null; from: "bucket" | "config" }> {
  const e = await kv.get(rateLimitKey(topic));
  if (e?.operation === "PUT") {
    const limit = storedRateLimit(e.string());
    if (limit !== undefined) return { limit, from: "bucket" };
  }
  const configured = config.topics[topic]?.rateLimit;
  return { limit: configured ? parseRateLimit(configured) : null, from: "config" };
}

/** Sets (or, with null, removes) `topic`'s rate limit for every node; it takes effect within about a second. */
export async function writeRateLimit(kv: KV, topic: string, limit: RateLimit | null): Promise<void> {
  await kv.put(rateLimitKey(topic), JSON.stringify(limit));
}
