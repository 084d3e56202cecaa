/**
 * Circuit breakers, one per endpoint, shared by the whole cluster in the endpoints KV bucket: what
 * an endpoint is (the webhook URL, the SMTP server, the APNs or FCM origin; the topic itself for
 * other channels), its record, and compare-and-set changes of its state. The sub-queue actors
 * decide the transitions (actors/subqueue/breaker.ts); `herald endpoints` and `herald status` read
 * and override them here.
 *
 * States: `closed` (pushes flow), `open` (messages wait, no attempts spent, until a probe after
 * `openMs`), `half-open` (one node's probe is under way), `disabled` (held until enabled).
 */
import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import type { TopicConfig } from "../config/schema.js";
import { isFanout } from "../config/topics.js";
import { HeraldError } from "../errors.js";

export type EndpointState = "closed" | "open" | "half-open" | "disabled";
export const ENDPOINT_STATES: readonly EndpointState[] = ["closed", "open", "half-open", "disabled"];

export interface EndpointRecord {
  endpoint: string;
  state: EndpointState;
  /** Topics that push to it (as the writer's config says). */
  topics: string[];
  /** When it entered this state (the writer's wall clock: for people, never compared across hosts). */
  since: string;
  /** Why: the failures that opened it, the probe's outcome, or who disabled it. */
  reason: string;
  /** The node that made the change. */
  node: string;
  /** Consecutive open periods (each failed probe adds one); reset when it closes. */
  opens: number;
  /** In `half-open`: the node whose probe is under way. */
  prober?: string;
}

/** What a topic's breaker guards: its endpoint, or the topic itself when its channel has none. */
export function endpointOf(topicName: string, t: TopicConfig): string {
  // A fan-out topic's channels go to several places: its breaker guards the topic.
  if (isFanout(t)) return `topic:${topicName}`;
  switch (t.channel) {
    case "webhook": {
      const u = new URL(t.url);
      return `${u.origin}${u.pathname}`;
    }
    case "email":
      return `smtp://${t.smtp.host}:${t.smtp.port}`;
    case "apns":
    case "fcm":
      return new URL(t.endpoint).origin;
    default:
      return `topic:${topicName}`;
  }
}

/** The KV key of an endpoint (a URL cannot be a key: a hash of it). */
export const endpointKey = (endpoint: string): string => `e.${createHash("sha256").update(endpoint).digest("hex").slice(0, 32)}`;

export function parseEndpoint(text: string): EndpointRecord | undefined {
  try {
    const r = JSON.parse(text) as EndpointRecord;
    return typeof r.endpoint === "string" && ENDPOINT_STATES.includes(r.state) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Every endpoint record in the bucket. */
export async function listEndpoints(kv: KV): Promise<EndpointRecord[]> {
  const out: EndpointRecord[] = [];
  for await (const key of await kv.keys("e.>")) {
    const e = await kv.get(key);
    if (e?.operation !== "PUT") continue;
    const r = parseEndpoint(e.string());
    if (r) out.push(r);
  }
  return out.sort((a, b) => a.endpoint.localeCompare(b.endpoint));
}

/**
 * Changes an endpoint's record with `change` (given the stored one, or undefined; returns the new
 * record, or undefined to leave it) by compare-and-set on its revision. Returns the record written,
 * or undefined when `change` declined or another writer got there first (the caller sees theirs
 * through its watch).
 */
export async function changeEndpoint(kv: KV, endpoint: string, change: (old: EndpointRecord | undefined) => EndpointRecord | undefined): Promise<EndpointRecord | undefined> {
  const key = endpointKey(endpoint);
  const e = await kv.get(key);
  const old = e?.operation === "PUT" ? parseEndpoint(e.string()) : undefined;
  const next = change(old);
  if (next === undefined) return undefined;
  try {
    if (e) await kv.update(key, JSON.stringify(next), e.revision);
    else await kv.create(key, JSON.stringify(next));
    return next;
  } catch {
    return undefined;
  }
}

/**
 * Every breaker the config defines, with its stored record, or `closed` when no record says
 * otherwise (a breaker that never opened has none); then any other stored endpoint.
 */
export function breakerStates(
  records: readonly EndpointRecord[],
  topics: Record<string, TopicConfig>,
): (EndpointRecord | { endpoint: string; state: EndpointState; topics: string[] })[] {
  const rows = new Map<string, EndpointRecord | { endpoint: string; state: EndpointState; topics: string[] }>(records.map((r) => [r.endpoint, r]));
  for (const [name, t] of Object.entries(topics)) {
    if (!t.breaker) continue;
    const e = endpointOf(name, t);
    const row = rows.get(e);
    if (!row) rows.set(e, { endpoint: e, state: "closed", topics: [name] });
    else if (!("since" in row) && !row.topics.includes(name)) row.topics.push(name);
  }
  return [...rows.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint));
}

/**
 * The endpoints `what` names: an endpoint as listed, or a topic (its endpoint). A USAGE error
 * lists what exists otherwise.
 */
export function resolveEndpoint(what: string, topics: Record<string, TopicConfig>, known: readonly EndpointRecord[]): string {
  const topic = topics[what];
  if (topic) return endpointOf(what, topic);
  if (known.some((r) => r.endpoint === what)) return what;
  const all = breakerStates(known, topics).map((r) => r.endpoint);
  throw new HeraldError("UNKNOWN_ID", `no endpoint or topic ${JSON.stringify(what)}${all.length ? `; endpoints: ${all.join(", ")}` : ""}`);
}
