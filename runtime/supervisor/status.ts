/**
 * The status contract (DESIGN.md §3): what each supervisor reports, and how `herald status`
 * assembles one cluster view from those reports, the registry and the lease.
 */
import type { ActorSummary } from "./actor-host.js";
import type { Judgement, NodeState } from "./liveness.js";
import type { RegistryRecord } from "./registry.js";

/** One supervisor's answer on `herald.status`. */
export interface NodeReport {
  cluster: string;
  name: string;
  pid: number;
  mainProcessIp: string;
  role: "master" | "slave";
  epoch: number | null;
  readMark: number;
  /** ms since this node's own last successful heartbeat write. */
  heartbeatAgeMs: number;
  isStopServer: boolean;
  stopping: boolean;
  actors: ActorSummary[];
  /** This node's liveness judgement of every node it has seen, on its own clock. */
  view: Record<string, Judgement>;
  /** The lease as this node last read it. */
  master: { node: string | null; epoch: number } | null;
}

export interface NodeStatus {
  name: string;
  state: NodeState;
  role: "master" | "slave";
  pid: number | null;
  mainProcessIp: string | null;
  readMark: number | null;
  heartbeatAgeMs: number | null;
  isStopServer: boolean;
  actors: ActorSummary[];
}

/** Something an operator should act on, with a stable code for scripts. */
export interface StatusWarning {
  code: string;
  message: string;
}

export interface ClusterStatus {
  cluster: string;
  master: { node: string | null; epoch: number } | null;
  nodes: NodeStatus[];
  queue: { pending: number };
  exceptions: { retrying: number; dead: number };
  /** Scheduled messages not yet released (the `HERALD_SCHEDULED` stream's count). */
  scheduled: { pending: number };
  /** Every configured collector, in config order. */
  collectors: CollectorStatus[];
  /** Endpoints whose circuit breaker is not closed (open, half-open, disabled). */
  endpoints?: { endpoint: string; state: string; topics: string[]; since: string; reason: string }[];
  /** What needs attention (empty when all is well). */
  warnings: StatusWarning[];
}

/**
 * A collector as `herald status` shows it. The collector writes this record (JSON) to the
 * collectors bucket after every collection, under `status.<name>`; `herald status` reads it back
 * and fills in `waiting` for collectors that have never run and `stale` for records written under
 * an older master epoch. Strings such as the last error cannot travel as actor gauges, and a record
 * in KV also survives the node that wrote it, so a dead master's last error is still visible.
 * Times are ISO strings on the collector's host clock (shown, never compared for liveness).
 */
export interface CollectorStatus {
  name: string;
  kind: "postgres" | "http";
  /**
   * `waiting`: never ran (no master yet, or no collector actor on it); `ok`: the last collection
   * succeeded; `failing`: the source failed, retried with backoff; `fenced`: a newer master owns the
   * checkpoint, this writer stopped; `stale`: written under an older master epoch, the current
   * master has not reported yet.
   */
  state: "waiting" | "ok" | "failing" | "fenced" | "stale";
  node: string | null;
  actor: string | null;
  /** Master epoch the record was written under. */
  epoch: number | null;
  lastTickAt: string | null;
  lastSuccessAt: string | null;
  /**
   * Rows or messages collected and made durable since the checkpoint was created: newly queued,
   * already in the queue, or dead-lettered. Kept in the checkpoint itself, so exact across failovers.
   */
  collected: number;
  /** Of those, publishes the queue recognised as already queued (re-collection after a failover or a reset). */
  duplicates: number;
  /** Of those, items that could not become messages (unknown topic, invalid data): dead letters. */
  deadLettered: number;
  /** Source time of the newest collected row or message (PostgreSQL: the updatedAtColumn as text). */
  newestUpdatedAt: string | null;
  /** At the last collection: its time minus newestUpdatedAt, in ms (grows while the source is quiet). */
  lagMs: number | null;
  /** The last collection read everything there was. */
  caughtUp: boolean;
  consecutiveFailures: number;
  lastError: string | null;
  lastErrorAt: string | null;
  /** While failing: when the next attempt is due. */
  nextAttemptAt: string | null;
}


/** What status shows for a collector whose record is missing, or written under an older master. */
export function collectorView(
  configured: { name: string; kind: "postgres" | "http" },
  record: CollectorStatus | undefined,
  lease: { node: string | null; epoch: number } | null,
): CollectorStatus {
  if (!record) {
    return {
      name: configured.name,
      kind: configured.kind,
      state: "waiting",
      node: null,
      actor: null,
      epoch: null,
      lastTickAt: null,
      lastSuccessAt: null,
      collected: 0,
      duplicates: 0,
      deadLettered: 0,
      newestUpdatedAt: null,
      lagMs: null,
      caughtUp: false,
      consecutiveFailures: 0,
      lastError: null,
      lastErrorAt: null,
      nextAttemptAt: null,
    };
  }
  const stale = lease !== null && record.epoch !== null && record.epoch < lease.epoch && record.state !== "fenced";
  return { ...record, name: configured.name, kind: configured.kind, ...(stale ? { state: "stale" as const } : {}) };
}

export interface StatusInputs {
  cluster: string;
  /** Node names in config order (shown first, in that order). */
  configured: string[];
  reports: NodeReport[];
  records: Map<string, RegistryRecord>;
  lease: { node: string | null; epoch: number } | null;
  /** Judgements made by the caller itself, used when no supervisor judged a node. */
  ownView?: Record<string, Judgement>;
}

/** Assembles the cluster view: a node's own answer wins; others are judged by the live nodes. */
export function assembleStatus(input: StatusInputs): ClusterStatus {
  const reports = new Map(input.reports.map((r) => [r.name, r]));
  const names = [...input.configured];
  for (const n of [...input.records.keys(), ...reports.keys()]) if (!names.includes(n)) names.push(n);
  // Prefer the master's judgement of others: it is the node whose view drives failover.
  const judges = [...input.reports].sort((a, b) => (a.role === "master" ? -1 : 0) - (b.role === "master" ? -1 : 0));
  const nodes = names.map((name): NodeStatus => {
    const own = reports.get(name);
    const rec = input.records.get(name);
    if (own) {
      return {
        name,
        state: "alive",
        role: own.role,
        pid: own.pid,
        mainProcessIp: own.mainProcessIp,
        readMark: own.readMark,
        heartbeatAgeMs: own.heartbeatAgeMs,
        isStopServer: own.isStopServer,
        actors: own.actors,
      };
    }
    const judged = judges.map((r) => r.view[name]).find((j) => j !== undefined) ?? input.ownView?.[name];
    let state: NodeState = judged?.state ?? "dead";
    if (rec?.state === "stopped") state = "stopped";
    return {
      name,
      state: rec ? state : "dead",
      // A node that did not answer holds the role only if the lease still names it.
      role: input.lease?.node === name ? "master" : "slave",
      pid: rec?.pid ?? null,
      mainProcessIp: rec?.mainProcessIp ?? null,
      readMark: rec?.readMark ?? null,
      heartbeatAgeMs: judged?.heartbeatAgeMs ?? null,
      isStopServer: rec?.isStopServer ?? false,
      actors: (rec?.actors ?? []).map((a) => ({ ...a, state: state === "alive" ? a.state : "stopped" })),
    };
  });
  return {
    cluster: input.cluster,
    master: input.lease,
    nodes,
    queue: { pending: 0 },
    exceptions: { retrying: 0, dead: 0 },
    scheduled: { pending: 0 },
    collectors: [],
    warnings: [],
  };
}
