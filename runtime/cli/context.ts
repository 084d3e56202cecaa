/**
 * What every command needs: the config (from -c, default ./cluster.config.json) and a NATS
 * connection (from --server, NATS_URL, or the config).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { resolve } from "node:path";
import { loadConfig, type LoadedConfig } from "../config/index.js";
import { HeraldError, errorText } from "../errors.js";
import { bindBucket } from "../nats/buckets.js";

export const DEFAULT_CONFIG = "cluster.config.json";

export interface CommonFlags {
  config?: string;
  server?: string;
}

export async function loadFromFlags(flags: CommonFlags): Promise<LoadedConfig> {
  return loadConfig(resolve(flags.config ?? DEFAULT_CONFIG));
}

/** NATS servers for a command: --server, then NATS_URL, then the config. */
export function serversFor(flags: CommonFlags, loaded: LoadedConfig | undefined): string[] {
  if (flags.server) return flags.server.split(",");
  if (process.env.NATS_URL) return process.env.NATS_URL.split(",");
  if (loaded) return loaded.config.nats.servers;
  throw new HeraldError("USAGE", "no NATS server known: pass -c cluster.config.json, --server URL or set NATS_URL");
}

/** A short-lived CLI connection that fails fast with a clear line when NATS is unreachable. */
export async function connectCli(servers: string[]): Promise<NatsConnection> {
  try {
    return await connect({ servers, name: "herald:cli", timeout: 3000, maxReconnectAttempts: 0 });
  } catch (err) {
    throw new HeraldError(
      "NATS_UNREACHABLE",
      `cannot reach NATS at ${servers.join(", ")} (${errorText(err)}): is the cluster running? (herald start)`,
    );
  }
}

/**
 * Binds a bucket the nodes create (`what` names it: "rules", "registry"); a missing one means the
 * cluster has never been started on this NATS, and is said so in one line.
 */
export async function openClusterBucket(nc: NatsConnection, bucket: string, what: string): Promise<KV> {
  try {
    return await bindBucket(nc, bucket);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new HeraldError("NO_CLUSTER", `no ${what} bucket ${bucket} on this NATS: has the cluster been started? (herald start)`);
    }
    throw new HeraldError("NATS", `cannot open the ${what} bucket ${bucket}: ${errorText(err)}`);
  }
}
