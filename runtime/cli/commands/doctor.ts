/**
 * `herald doctor`: what a careful operator checks before trusting a deployment — the login, the
 * server version and JetStream, replicas against the cluster's size, the durability that gives,
 * authentication, max_payload against limits.maxPayloadBytes, storage, and the replicas of the
 * streams that exist. Each line is ok, warn or fail with the fix; exit 1 when any check fails.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { existsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import path from "node:path";
import type { HeraldConfig } from "../../config/index.js";
import { errorText } from "../../errors.js";
import { describeAccess, type NatsAccess } from "../../nats/connect.js";
import { accessFor, connectCli, loadFromFlags, type CommonFlags } from "../context.js";
import { doctorChecks, renderDoctor, type DoctorFacts } from "../doctor-checks.js";
import { names } from "../../names.js";

export interface DoctorFlags extends CommonFlags {
  json?: boolean;
}

export async function doctorCommand(flags: DoctorFlags): Promise<number> {
  const loaded = await loadFromFlags(flags);
  const access = accessFor(flags, loaded);
  const facts = await gatherFacts(loaded.config, access);
  const checks = doctorChecks(facts);
  process.stdout.write(flags.json ? `${JSON.stringify(checks, null, 2)}\n` : renderDoctor(checks));
  return checks.some((c) => c.verdict === "fail") ? 1 : 0;
}

async function gatherFacts(config: HeraldConfig, access: NatsAccess): Promise<DoctorFacts> {
  const base: DoctorFacts = {
    connection: { ok: false, error: "" },
    streams: [],
    config: { replicas: config.nats.replicas, maxPayloadBytes: config.limits.maxPayloadBytes, embedded: config.nats.embedded, subjectPrefix: config.subjectPrefix },
    ...(config.nats.embedded ? { localDisk: await localDisk(config.nats.storeDir) } : {}),
  };
  let nc: NatsConnection;
  try {
    nc = await connectCli(access);
  } catch (err) {
    return { ...base, connection: { ok: false, error: errorText(err) } };
  }
  try {
    const info = nc.info!;
    const facts: DoctorFacts = {
      ...base,
      connection: { ok: true, login: `connected to ${describeAccess(access)}` },
      server: {
        version: info.version,
        name: info.server_name,
        clusterSize: info.cluster ? Math.max(1, info.connect_urls?.length ?? 1) : 1,
        ...(info.cluster ? { clusterName: info.cluster } : {}),
        jetstream: info.jetstream === true,
        authRequired: info.auth_required === true,
        tlsRequired: info.tls_required === true,
        maxPayload: info.max_payload,
      },
    };
    if (!facts.server!.jetstream) return facts;
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const account = await jsm.getAccountInfo();
    facts.account = { storage: account.storage, maxStorage: account.limits.max_storage };
    facts.streams = await heraldStreams(nc, config.subjectPrefix);
    return facts;
  } finally {
    await nc.close();
  }
}

/** Every stream and bucket Herald creates that exists now, with its replicas. */
async function heraldStreams(nc: NatsConnection, prefix: string): Promise<DoctorFacts["streams"]> {
  const jsm = await jetstreamManager(nc, { timeout: 5000 });
  const p = names(prefix);
  const wanted = [p.queueStream, p.exceptionStream, p.dlqStream, ...[names(prefix).registryBucket, p.rulesBucket, p.poisonBucket, names(prefix).collectorsBucket].map((b) => `KV_${b}`)];
  const found = await Promise.all(wanted.map((name) => jsm.streams.info(name).then((i) => ({ name, replicas: i.config.num_replicas || 1 }), () => undefined)));
  return found.filter((x): x is { name: string; replicas: number } => x !== undefined);
}

/** The filesystem the embedded server's store is (or will be) on. */
async function localDisk(storeDir: string): Promise<DoctorFacts["localDisk"]> {
  let dir = storeDir;
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    const s = await statfs(dir);
    return { free: s.bavail * s.bsize, total: s.blocks * s.bsize, path: storeDir };
  } catch {
    return undefined;
  }
}
