/** The rules bucket as the CLI sees it (rules and pauses), and the topic check its commands share. */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { LoadedConfig } from "../config/index.js";
import { errorText, HeraldError } from "../errors.js";
import { pipelineNames } from "../pipeline/streams.js";

/**
 * Opens the rules bucket, or says in one line that the cluster has never been started (the
 * bucket is created by the nodes at start).
 */
export async function openRulesBucket(nc: NatsConnection, prefix: string): Promise<KV> {
  const bucket = pipelineNames(prefix).rulesBucket;
  const kv = await new Kvm(nc).open(bucket);
  try {
    // open() binds without looking; status() asks the server whether the bucket exists.
    await kv.status();
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new HeraldError("NO_CLUSTER", `no rules bucket ${bucket} on this NATS: has the cluster been started? (herald start)`);
    }
    throw new HeraldError("NATS", `cannot open the rules bucket ${bucket}: ${errorText(err)}`);
  }
  return kv;
}

/** A `--topic` must be one of the config's topics; a usage error lists them otherwise. */
export function requireTopic(loaded: LoadedConfig, topic: string | undefined): void {
  if (topic === undefined || Object.hasOwn(loaded.config.topics, topic)) return;
  const known = Object.keys(loaded.config.topics);
  const list = known.length === 0 ? "none are configured" : `topics: ${known.join(", ")}`;
  throw new HeraldError("USAGE", `no topic named "${topic}" in ${loaded.file} (${list})`);
}
