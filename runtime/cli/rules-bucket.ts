/** The rules bucket as the CLI sees it (rules and pauses), and the topic check its commands share. */
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { LoadedConfig } from "../config/index.js";
import { HeraldError } from "../errors.js";
import { openClusterBucket } from "../nats/buckets.js";
import { names } from "../names.js";

/** Opens the rules bucket, or says in one line that the cluster has never been started. */
export function openRulesBucket(nc: NatsConnection, prefix: string): Promise<KV> {
  return openClusterBucket(nc, names(prefix).rulesBucket, "rules");
}

/** A `--topic` must be one of the config's topics; a usage error lists them otherwise. */
export function requireTopic(loaded: LoadedConfig, topic: string | undefined): void {
  if (topic === undefined || Object.hasOwn(loaded.config.topics, topic)) return;
  const known = Object.keys(loaded.config.topics);
  const list = known.length === 0 ? "none are configured" : `topics: ${known.join(", ")}`;
  throw new HeraldError("USAGE", `no topic named "${topic}" in ${loaded.file} (${list})`);
}
