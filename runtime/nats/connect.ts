/**
 * Every NATS connection Herald makes — supervisors, actors, the CLI, the test and benchmark
 * harnesses — is built here from one description of the access (`NatsAccess`): servers,
 * credentials (user/password, token, NKey seed file or .creds file, from the config or the
 * environment) and TLS. Credentials travel as client options, never in URLs (the v3 client
 * ignores URL credentials), and nothing here ever puts a secret into a log line or an error.
 */
import { readFileSync } from "node:fs";
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from "@nats-io/transport-node";
import type { Secret } from "../config/nats.js";
import { errorText, HeraldError } from "../errors.js";

export type NatsAuth =
  | { user: string; pass: Secret }
  | { token: Secret }
  | { credsFile: string }
  | { nkeySeedFile: string };

export interface NatsTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Where NATS is and how to log in. */
export interface NatsAccess {
  servers: string[];
  auth?: NatsAuth;
  tls?: NatsTls;
  /** Where the credentials came from, for messages: `nats.auth` or `NATS_USER`… */
  authFrom?: string;
}

export interface ConnectOptions extends NatsAccess {
  /** Shown by `nats server report connections`: `herald:<node>:<actor>`. */
  name: string;
  /**
   * Keep retrying the first connection instead of failing (long-running processes). The CLI
   * sets this to false so a wrong address fails fast with a clear line.
   */
  waitOnFirstConnect?: boolean;
  /** Inbox prefix of the connection's replies (nodes use a private one: see permissions.ts). */
  inboxPrefix?: string;
}

/** The access from the config's `nats` section (`auth` with relative paths already resolved). */
export function configAccess(nats: { servers: string[]; auth?: Partial<Record<string, unknown>>; tls?: NatsTls }): NatsAccess {
  return {
    servers: nats.servers,
    ...(nats.auth === undefined ? {} : { auth: pruned(nats.auth) as NatsAuth, authFrom: "nats.auth" }),
    ...(nats.tls === undefined ? {} : { tls: pruned({ ...nats.tls }) as NatsTls }),
  };
}

/** How often a node's connections ping their server, ms. */
const SERVER_PING_MS = 2000;
/** How long one connect attempt (to one server) may take, ms. */
const CONNECT_ATTEMPT_MS = 3000;

/** Connects with reconnects forever: a node outlives broker restarts. */
export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const options: ConnectionOptions = {
    ...clientOptions(opts),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: opts.waitOnFirstConnect ?? true,
    // A server that goes silent (its host cut off: no reset, no close) is given up after
    // (maxPingOut + 1) × pingInterval, and a connect attempt to one that does not answer after
    // `timeout`, so the next server in the list is tried within seconds rather than a minute
    // (measured: test/hosts.test.ts, BENCHMARKS.md "Several hosts").
    pingInterval: SERVER_PING_MS,
    maxPingOut: 2,
    timeout: CONNECT_ATTEMPT_MS,
    ...(opts.inboxPrefix === undefined ? {} : { inboxPrefix: opts.inboxPrefix }),
  };
  try {
    return await connect(options);
  } catch (err) {
    throw connectError(err, opts);
  }
}

/** The client options that carry `access`: servers, credentials and TLS. */
export function clientOptions(access: NatsAccess): ConnectionOptions {
  const options: ConnectionOptions = { servers: access.servers };
  const a = access.auth;
  const from = access.authFrom ?? "nats.auth";
  if (a !== undefined) {
    if ("user" in a) Object.assign(options, { user: a.user, pass: revealSecret(a.pass, `${from}.pass`) });
    else if ("token" in a) options.token = revealSecret(a.token, `${from}.token`);
    else if ("credsFile" in a) options.authenticator = credsAuthenticator(new TextEncoder().encode(readFile(a.credsFile, `${from}.credsFile`)));
    else if ("nkeySeedFile" in a) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFile(a.nkeySeedFile, `${from}.nkeySeedFile`, true)));
  }
  if (access.tls !== undefined) {
    const t = access.tls;
    for (const [key, file] of Object.entries(t)) if (file !== undefined) readFile(file, `nats.tls.${key}`);
    options.tls = { ...(t.caFile ? { caFile: t.caFile } : {}), ...(t.certFile ? { certFile: t.certFile, keyFile: t.keyFile } : {}) };
  }
  return options;
}

/** Where a connection goes and how it logs in, for log lines: never a secret. */
export function describeAccess(access: NatsAccess): string {
  return `${access.servers.join(",")} ${loginText(access)}`;
}

/** How a connection logs in: `as user herald (password from $VAR), TLS`. */
function loginText(access: NatsAccess): string {
  const a = access.auth;
  const who =
    a === undefined
      ? "without credentials"
      : "user" in a
        ? `as user ${a.user}${typeof a.pass === "object" ? ` (password from $${a.pass.env})` : ""}`
        : "token" in a
          ? `with a token${typeof a.token === "object" ? ` (from $${a.token.env})` : ""}`
          : "credsFile" in a
            ? `with the credentials in ${a.credsFile}`
            : `with the NKey seed in ${a.nkeySeedFile}`;
  const tls = access.tls === undefined ? "" : access.tls.certFile ? ", TLS with a client certificate" : ", TLS";
  return `${who}${tls}`;
}

/**
 * One clear line for a connection that failed: refused credentials, a TLS failure, or no server.
 * The client's own texts hold no secrets; URLs here never carry credentials.
 */
export function connectError(err: unknown, access: NatsAccess): HeraldError {
  if (err instanceof HeraldError) return err;
  const at = access.servers.join(", ");
  const text = errorText(err);
  const from = access.authFrom ?? "nats.auth";
  if (err instanceof AuthorizationError || /authorization violation|authentication/i.test(text)) {
    const hint = access.auth === undefined ? `the server requires credentials: set ${from}` : `check ${from}`;
    return new HeraldError("NATS_AUTH", `NATS at ${at} refused the login ${loginText(access)}: ${text}; ${hint}`);
  }
  if (/tls|ssl|certificate|handshake/i.test(text) || (err instanceof Error && /ERR_TLS|CERT|SSL/.test(String((err as { code?: unknown }).code ?? "")))) {
    return new HeraldError("NATS_TLS", `TLS with NATS at ${at} failed: ${text}; check nats.tls (caFile, certFile, keyFile)`);
  }
  return new HeraldError("NATS_UNREACHABLE", `cannot reach NATS at ${at} (${text}): is the cluster running? (herald start)`);
}

/** The secret's value; one from the environment must be set there. */
export function revealSecret(s: Secret, path: string): string {
  if (typeof s === "string") return s;
  const value = process.env[s.env];
  if (value === undefined || value === "") {
    throw new HeraldError("CONFIG", `${path}: the environment variable ${s.env} is not set (the config reads the secret from it)`);
  }
  return value;
}

function readFile(file: string, path: string, trim = false): string {
  try {
    const text = readFileSync(file, "utf8");
    return trim ? text.trim() : text;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : errorText(err);
    throw new HeraldError("CONFIG", `${path}: cannot read ${file}: ${why}`);
  }
}

/** Drops keys whose value is undefined (paths that were absent). */
function pruned(o: Partial<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
