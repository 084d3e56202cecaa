/**
 * Creating Herald's JetStream storage — every stream and KV bucket — with the replica count the
 * config asks for (`nats.replicas`). An object that already exists with another replica count is
 * kept as it is and reported (a log line at start, and `herald doctor`), never silently used as if
 * it matched: scaling a live stream is an operator's decision (`nats stream edit NAME --replicas N`).
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm, type KV, type KvOptions } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";

/** JetStream's "stream name already in use with a different configuration". */
const STREAM_NAME_EXIST = 10058;
/** JetStream's "JetStream system temporarily unavailable": a server whose JetStream is catching up. */
const CLUSTER_NOT_AVAILABLE = 10008;
/** JetStream's "not enabled" (server-wide) and "not enabled for account". */
const JETSTREAM_OFF_CODES: readonly number[] = [10076, JetStreamApiCodes.JetStreamNotEnabledForAccount];

export interface Storage {
  nc: NatsConnection;
  /** `nats.replicas`. */
  replicas: number;
  log: Logger;
}

/** The line reporting `what` kept at `actual` replicas where the config asks for `wanted`. */
export function replicaMismatch(what: string, actual: number, wanted: number): string {
  return (
    `${what} has ${actual} replica${actual === 1 ? "" : "s"} but nats.replicas is ${wanted}: it is kept as it is; ` +
    `scale it with \`nats stream edit ${what.replace(/^(stream|bucket) /, "")} --replicas ${wanted}\` or set nats.replicas to ${actual}`
  );
}

/**
 * Opens the KV bucket `name`, creating it with `opts` and the configured replicas when missing.
 * One that exists with other settings is opened as it is; a replica mismatch is logged.
 */
export async function ensureBucket(s: Storage, name: string, opts: Partial<KvOptions>): Promise<KV> {
  const kvm = new Kvm(s.nc);
  try {
    return await kvm.create(name, { ...opts, replicas: s.replicas });
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === STREAM_NAME_EXIST)) throw err;
  }
  const kv = await kvm.open(name);
  const status = await kv.status();
  if (status.replicas !== s.replicas) s.log.warn(replicaMismatch(`bucket KV_${name}`, status.replicas, s.replicas));
  return kv;
}

/** Logs a mismatch between an existing stream's replicas and the configured ones. */
export function checkStreamReplicas(s: Storage, config: Pick<StreamConfig, "name" | "num_replicas">): void {
  const actual = config.num_replicas || 1;
  if (actual !== s.replicas) s.log.warn(replicaMismatch(`stream ${config.name}`, actual, s.replicas));
}

/**
 * Whether a failed setup step means JetStream is off for this account, as opposed to a JetStream
 * object not yet able to answer. The client reports "no responders" on a stream's subject as
 * `JetStreamNotEnabled`, and that is also what a write to a freshly created replicated
 * stream gets while its replicas elect a leader: nobody listens there yet. So such a verdict is
 * checked with the JetStream API itself, which answers whenever JetStream is on.
 */
export async function jetStreamIsOff(nc: NatsConnection, err: unknown, timeoutMs = 2000): Promise<boolean> {
  if (!saysJetStreamOff(err)) return false;
  try {
    await (await jetstreamManager(nc, { timeout: timeoutMs })).getAccountInfo();
    return false;
  } catch (check) {
    return saysJetStreamOff(check);
  }
}

/**
 * Whether a failed JetStream request only says "not now": a timeout, or a server whose JetStream
 * is still catching up after a restart or a partition ("JetStream system temporarily
 * unavailable": seen for over 50 s from a restarted server of a three-server cluster while the
 * other two served). Such a step is worth trying again for as long as it takes.
 */
export function jetStreamNotNow(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === CLUSTER_NOT_AVAILABLE;
  return err instanceof Error && (err.name === "TimeoutError" || /^timeout$/i.test(err.message));
}

/**
 * The client's "JetStream not enabled" verdict: its error class (the package's public face does not
 * export it, so it is known by its class name) or the server's API codes. On a publish it only
 * means that no stream answered on the subject (see {@link jetStreamIsOff}).
 */
export function saysJetStreamOff(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return JETSTREAM_OFF_CODES.includes(err.code);
  return err instanceof Error && err.name === "JetStreamNotEnabled";
}
