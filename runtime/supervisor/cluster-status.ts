/**
 * The cluster status as `herald status`, `GET /v1/status` and the tests see it: every
 * supervisor's answer on the status subject, the registry records, the master lease, the
 * pipeline's stream counts and the collectors' status records, put together (status.ts).
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { decode } from "../codec/index.js";
import { errorText, HeraldError } from "../errors.js";
import { bindBucket, openClusterBucket } from "../nats/buckets.js";
import { monotonicNow } from "../platform/index.js";
import { LivenessJudge, type Judgement } from "./liveness.js";
import type { LeaseValue } from "./master-lease.js";
import { parseRecord, type RegistryRecord } from "./registry.js";
import { assembleStatus, collectorView, type ClusterStatus, type CollectorStatus, type NodeReport, type StatusWarning } from "./status.js";
import { MASTER_KEY, collectorStatusKey, names, nodeKey } from "../names.js";
import { listEndpoints } from "../pipeline/endpoints.js";

export interface StatusConfig {
  cluster: string;
  subjectPrefix: string;
  nodes: { name: string }[];
  heartbeat: { intervalMs: number; timeoutMs: number };
  /** Configured collectors (absent: none). */
  collectors?: { name: string; kind: "postgres" | "http" }[];
}

export async function gatherStatus(nc: NatsConnection, config: StatusConfig): Promise<ClusterStatus> {
  const n = names(config.subjectPrefix);
  const kv = await openClusterBucket(nc, n.registryBucket, "registry");
  const configured = config.nodes.map((x) => x.name);
  const [reports, records, counts] = await Promise.all([
    collectReports(nc, n.status),
    readRecords(kv, configured),
    pipelineCounts(nc, config.subjectPrefix),
  ]);
  const lease = await readLease(kv);
  let ownView: Record<string, Judgement> | undefined;
  if (reports.length === 0 && records.size > 0) {
    // No supervisor answered: judge liveness ourselves, over one timeout on our own clock.
    ownView = await observe(kv, configured, config.heartbeat.timeoutMs + config.heartbeat.intervalMs, config.heartbeat.timeoutMs);
  }
  const status = assembleStatus({
    cluster: config.cluster,
    configured,
    reports: reports.filter((r) => r.cluster === config.cluster),
    records,
    lease,
    ownView,
  });
  const [collectors, endpoints] = await Promise.all([collectorStatuses(nc, config.subjectPrefix, config.collectors ?? [], lease), troubledEndpoints(nc, config.subjectPrefix)]);
  return { ...status, ...counts, collectors, ...(endpoints.length ? { endpoints } : {}) };
}

/** Endpoints whose breaker is not closed; none when no breaker has ever opened. */
async function troubledEndpoints(nc: NatsConnection, prefix: string): Promise<NonNullable<ClusterStatus["endpoints"]>> {
  let kv: KV;
  try {
    kv = await bindBucket(nc, names(prefix).endpointsBucket);
  } catch {
    return [];
  }
  const all = await listEndpoints(kv).catch(() => []);
  return all.filter((r) => r.state !== "closed").map(({ endpoint, state, topics, since, reason }) => ({ endpoint, state, topics, since, reason }));
}

/**
 * Each configured collector's status record (written by the collector after every collection),
 * read by direct gets; a collector without a record, or with no bucket yet, shows as `waiting`.
 */
export async function collectorStatuses(
  nc: NatsConnection,
  prefix: string,
  configured: { name: string; kind: "postgres" | "http" }[],
  lease: { node: string | null; epoch: number } | null,
): Promise<CollectorStatus[]> {
  if (configured.length === 0) return [];
  let kv: KV | undefined;
  try {
    kv = await bindBucket(nc, names(prefix).collectorsBucket);
  } catch {
    // No collector has run on this NATS yet.
  }
  const records = await Promise.all(
    configured.map(async (c) => {
      const e = await kv?.get(collectorStatusKey(c.name)).catch(() => null);
      if (!e || e.operation !== "PUT") return undefined;
      try {
        return e.json<CollectorStatus>();
      } catch {
        return undefined;
      }
    }),
  );
  return configured.map((c, i) => collectorView(c, records[i], lease));
}

/**
 * Messages waiting in the pipeline's streams. The queue and exception streams have work-queue
 * retention, so their message counts are exactly what is not yet done; a stream that does not
 * exist yet (cluster never started) counts 0.
 */
export async function pipelineCounts(nc: NatsConnection, prefix: string): Promise<Pick<ClusterStatus, "queue" | "exceptions" | "scheduled" | "warnings">> {
  const p = names(prefix);
  const jsm = await jetstreamManager(nc);
  const read = async (stream: string) => {
    try {
      const info = await jsm.streams.info(stream);
      return { messages: info.state.messages, bytes: info.state.bytes, maxBytes: info.config.max_bytes };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return { messages: 0, bytes: 0, maxBytes: -1 };
      throw new HeraldError("NATS", `cannot read stream ${stream}: ${errorText(err)}`);
    }
  };
  const [queue, exceptions, dead, scheduled] = await Promise.all([read(p.queueStream), read(p.exceptionStream), read(p.dlqStream), read(p.scheduledStream)]);
  return {
    queue: { pending: queue.messages },
    exceptions: { retrying: exceptions.messages, dead: dead.messages },
    scheduled: { pending: scheduled.messages },
    warnings: deadLetterWarnings(dead.bytes, dead.maxBytes),
  };
}

/** The dead-letter stream counts as nearly full from this share of `pipeline.deadLetters.maxBytes`. */
export const DLQ_WARN_RATIO = 0.8;

/**
 * Warnings about the dead-letter stream's size against its cap (none without a cap). The stream
 * refuses what does not fit, so it never reads as exactly full: from 80 % on it may already be
 * refusing letters, and the warning says what that means.
 */
export function deadLetterWarnings(bytes: number, maxBytes: number): StatusWarning[] {
  if (!(maxBytes > 0) || bytes < DLQ_WARN_RATIO * maxBytes) return [];
  const pct = Math.min(100, Math.round((100 * bytes) / maxBytes));
  return [
    {
      code: "DEAD_LETTERS_NEAR_LIMIT",
      message:
        `dead letters use ${bytes} of ${maxBytes} bytes (${pct}%, pipeline.deadLetters.maxBytes); ` +
        `when full, new dead letters are refused and their messages wait in the queue: replay or purge them (herald dlq), or raise the limit`,
    },
  ];
}

/** Every supervisor's answer on the status subject; none (not an error) when no node answers. */
export async function collectReports(nc: NatsConnection, subject: string): Promise<NodeReport[]> {
  const out: NodeReport[] = [];
  try {
    const replies = await nc.requestMany(subject, undefined, { strategy: "stall", stall: 300, maxWait: 2000 });
    for await (const m of replies) {
      try {
        out.push(decode<NodeReport>(m.data));
      } catch {
        // A malformed answer is ignored; the node then shows as judged by the others.
      }
    }
  } catch {
    // No responders: every node is down or unreachable; the registry still tells who they were.
  }
  return out;
}

/**
 * The records of the configured nodes. Each is a direct get (a request with a timeout); the
 * client's `keys()` listing is avoided because with a subject filter it can wait forever.
 */
export async function readRecords(kv: KV, nodes: string[]): Promise<Map<string, RegistryRecord>> {
  const records = new Map<string, RegistryRecord>();
  const entries = await Promise.all(nodes.map((n) => kv.get(nodeKey(n))));
  entries.forEach((e, i) => {
    const rec = e ? parseRecord(e) : undefined;
    if (rec) records.set(nodes[i]!, rec);
  });
  return records;
}

async function readLease(kv: KV): Promise<{ node: string | null; epoch: number } | null> {
  const e = await kv.get(MASTER_KEY);
  if (!e || e.operation !== "PUT") return null;
  try {
    const v = e.json<LeaseValue>();
    return { node: v.node, epoch: v.epoch };
  } catch {
    return null;
  }
}

async function observe(kv: KV, nodes: string[], forMs: number, timeoutMs: number): Promise<Record<string, Judgement>> {
  const judge = new LivenessJudge(timeoutMs);
  const start = monotonicNow();
  while (monotonicNow() - start <= forMs) {
    for (const [name, rec] of await readRecords(kv, nodes)) judge.observe(name, rec, monotonicNow());
    await new Promise((r) => setTimeout(r, 250));
  }
  const view: Record<string, Judgement> = {};
  for (const name of judge.nodes()) view[name] = judge.judge(name, monotonicNow())!;
  return view;
}
