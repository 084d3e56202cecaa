/**
 * `herald ratelimit get|set|clear TOPIC` and `herald endpoints list|enable|disable`: the delivery
 * controls an operator changes at runtime. Rate limits are keys of the rules bucket (every node
 * follows them within about a second); breakers are records of the endpoints bucket, changed by
 * compare-and-set like the nodes change them (runtime/pipeline/endpoints.ts).
 */
import { errorText, HeraldError } from "../../errors.js";
import { names } from "../../names.js";
import { openClusterBucket } from "../../nats/buckets.js";
import { breakerStates, changeEndpoint, endpointOf, listEndpoints, resolveEndpoint, type EndpointState } from "../../pipeline/endpoints.js";
import { currentRateLimit, parseRateLimit, writeRateLimit } from "../../rules/store.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { openRulesBucket, requireTopic } from "../rules-bucket.js";

export interface DeliveryFlags extends CommonFlags {
  "per-second"?: string;
  burst?: string;
  json?: boolean;
}

export async function rateLimitCommand(action: string | undefined, topic: string | undefined, flags: DeliveryFlags): Promise<number> {
  if (topic === undefined) throw new HeraldError("USAGE", `herald ratelimit ${action}: give the topic`);
  const loaded = await loadFromFlags(flags);
  requireTopic(loaded, topic);
  let limit;
  if (action === "set") {
    if (flags["per-second"] === undefined) throw new HeraldError("USAGE", "herald ratelimit set: give --per-second N (and --burst N, default N rounded up)");
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    limit = parseRateLimit({ perSecond: num(flags["per-second"]), ...(flags.burst === undefined ? {} : { burst: num(flags.burst) }) }, "--per-second/--burst:");
  }
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openRulesBucket(nc, loaded.config.subjectPrefix);
    if (action === "set" || action === "clear") {
      await writeRateLimit(kv, topic, limit ?? null);
      process.stdout.write(limit ? `topic ${topic}: at most ${limit.perSecond} pushes per second cluster-wide, bursts of ${limit.burst}\n` : `topic ${topic}: no rate limit\n`);
      return 0;
    }
    const { limit: now, from } = await currentRateLimit(kv, loaded.config, topic);
    if (flags.json) process.stdout.write(`${JSON.stringify({ topic, rateLimit: now, from })}\n`);
    else process.stdout.write(now ? `topic ${topic}: ${now.perSecond} pushes per second, bursts of ${now.burst} (from the ${from})\n` : `topic ${topic}: no rate limit (from the ${from})\n`);
    return 0;
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    throw new HeraldError("NATS", `herald ratelimit ${action}: ${errorText(err)}`);
  } finally {
    await nc.close();
  }
}

export async function endpointsCommand(action: string | undefined, what: string | undefined, flags: DeliveryFlags): Promise<number> {
  if (action !== "list" && what === undefined) throw new HeraldError("USAGE", `herald endpoints ${action}: give the endpoint (as listed) or a topic`);
  const loaded = await loadFromFlags(flags);
  const { config } = loaded;
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openClusterBucket(nc, names(config.subjectPrefix).endpointsBucket, "endpoints");
    const known = await listEndpoints(kv);
    if (action === "list") {
      const list = breakerStates(known, config.topics);
      if (flags.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else if (list.length === 0) process.stdout.write("no endpoint has a breaker (topics.<name>.breaker)\n");
      else for (const r of list) process.stdout.write(`${r.state.padEnd(9)} ${r.endpoint}  topics ${r.topics.join(", ")}${"since" in r ? `  since ${r.since}: ${r.reason}` : ""}\n`);
      return 0;
    }
    const endpoint = resolveEndpoint(what!, config.topics, known);
    const to: EndpointState = action === "enable" ? "closed" : "disabled";
    const topics = Object.entries(config.topics).filter(([n, t]) => endpointOf(n, t) === endpoint).map(([n]) => n);
    const written = await changeEndpoint(kv, endpoint, (old) => ({
      endpoint,
      state: to,
      topics: old?.topics ?? topics,
      since: new Date().toISOString(),
      reason: action === "enable" ? "enabled by an operator" : "disabled by an operator",
      node: "operator",
      opens: 0,
    }));
    if (!written) throw new HeraldError("NATS", `the endpoint ${endpoint} changed meanwhile: run herald endpoints ${action} again`);
    nc.publish(names(config.subjectPrefix).endpointEvent(to), JSON.stringify({ type: `endpoint.${to}`, endpoint, state: to, topics: written.topics, reason: written.reason, node: "operator", at: written.since }));
    await nc.flush();
    process.stdout.write(`${endpoint}: ${to === "closed" ? "enabled (breaker closed): its messages are pushed again" : "disabled: its messages are held until herald endpoints enable"}\n`);
    return 0;
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    throw new HeraldError("NATS", `herald endpoints ${action}: ${errorText(err)}`);
  } finally {
    await nc.close();
  }
}
