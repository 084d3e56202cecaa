/**
 * What every command needs: the config (from -c, default ./cluster.config.json) and a NATS
 * connection: servers from --server, then NATS_URL, then the config; credentials and TLS from the
 * `nats` CLI's environment variables when set (NATS_USER, NATS_PASSWORD, NATS_CREDS, NATS_NKEY,
 * NATS_CA, NATS_CERT, NATS_KEY), else from the config.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { resolve } from "node:path";
import { loadConfig, type LoadedConfig } from "../config/index.js";
import { HeraldError } from "../errors.js";
import { clientOptions, configAccess, connectError, type NatsAccess, type NatsAuth } from "../nats/connect.js";

export const DEFAULT_CONFIG = "cluster.config.json";

export interface CommonFlags {
  config?: string;
  server?: string;
}

export async function loadFromFlags(flags: CommonFlags): Promise<LoadedConfig> {
  return loadConfig(resolve(flags.config ?? DEFAULT_CONFIG));
}

/** Where a command finds NATS and how it logs in (see the file's comment for the order). */
export function accessFor(flags: CommonFlags, loaded: LoadedConfig | undefined, env: NodeJS.ProcessEnv = process.env): NatsAccess {
  // An empty variable is an unset one, as in the `nats` CLI.
  const given = flags.server ?? (env.NATS_URL || undefined);
  if (given === undefined && !loaded) {
    throw new HeraldError("USAGE", "no NATS server known: pass -c cluster.config.json, --server URL or set NATS_URL");
  }
  const fromConfig = loaded ? configAccess(loaded.config.nats) : { servers: [] };
  const urls = given === undefined ? { servers: fromConfig.servers } : splitUserinfo(given.split(","));
  const access: NatsAccess = { ...fromConfig, servers: urls.servers };
  const envAuth = authFromEnv(env) ?? ("auth" in urls && urls.auth ? { auth: urls.auth, authFrom: urls.authFrom } : undefined);
  if (envAuth) Object.assign(access, envAuth);
  if (env.NATS_CA || env.NATS_CERT || env.NATS_KEY) {
    access.tls = { ...(env.NATS_CA ? { caFile: env.NATS_CA } : {}), ...(env.NATS_CERT ? { certFile: env.NATS_CERT, keyFile: env.NATS_KEY } : {}) };
  }
  return access;
}

/** Credentials from the `nats` CLI's variables: a .creds file, an NKey seed file, or user (and password, else a token). */
function authFromEnv(env: NodeJS.ProcessEnv): Pick<NatsAccess, "auth" | "authFrom"> | undefined {
  if (env.NATS_CREDS) return { auth: { credsFile: env.NATS_CREDS }, authFrom: "NATS_CREDS" };
  if (env.NATS_NKEY) return { auth: { nkeySeedFile: env.NATS_NKEY }, authFrom: "NATS_NKEY" };
  if (env.NATS_USER && env.NATS_PASSWORD) return { auth: { user: env.NATS_USER, pass: env.NATS_PASSWORD }, authFrom: "NATS_USER/NATS_PASSWORD" };
  if (env.NATS_USER) return { auth: { token: env.NATS_USER }, authFrom: "NATS_USER" };
  return undefined;
}

/**
 * `nats://user:pass@host` as the `nats` CLI takes it: the v3 client ignores credentials in a URL,
 * so they become options, and the URL is kept (and shown) without them.
 */
function splitUserinfo(urls: string[]): { servers: string[]; auth?: NatsAuth; authFrom?: string } {
  let auth: NatsAuth | undefined;
  const servers = urls.map((u) => {
    const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(u);
    if (!m) return u;
    const [user, pass] = m[2]!.split(":").map((x) => decodeURIComponent(x));
    auth ??= pass === undefined ? { token: user! } : { user: user!, pass };
    return `${m[1]}${m[3]}`;
  });
  return auth === undefined ? { servers } : { servers, auth, authFrom: "the server URL" };
}

/** A short-lived CLI connection that fails fast with one clear line (unreachable, refused, TLS). */
export async function connectCli(access: NatsAccess): Promise<NatsConnection> {
  try {
    return await connect({ ...clientOptions(access), name: "herald:cli", timeout: 3000, maxReconnectAttempts: 0 });
  } catch (err) {
    throw connectError(err, access);
  }
}

