/**
 * Every NATS subject, stream and bucket name Herald uses, derived from the configurable prefix
 * (default `herald`), so two clusters can share one NATS account without colliding.
 */
export interface Names {
  prefix: string;
  /** `herald.in.<topic>`: fire-and-forget ingest. */
  in(topic: string): string;
  /** `herald.submit`: request/reply ingest (the SOA interface). */
  submit: string;
  /** `herald.out.<topic>`: default subject of the `nats` push channel. */
  out(topic: string): string;
  /** `herald.status`: every supervisor answers with its node's status. */
  status: string;
  /** `herald.ctl.<node>`: control requests to one node's supervisor (fault drills). */
  ctl(node: string): string;
  /** `herald.events`: supervisor lifecycle events (mastership, restarts), for operators and tests. */
  events: string;
  /** KV bucket holding each node's heartbeat record and the master lease. */
  registryBucket: string;
  /**
   * Inbox prefix of every node connection (`_INBOX_herald`): replies to nodes land where only
   * nodes may subscribe, apart from the `_INBOX.>` publishers and operators use.
   */
  nodeInbox: string;
}

export function names(prefix = "herald"): Names {
  return {
    prefix,
    in: (topic) => `${prefix}.in.${topic}`,
    submit: `${prefix}.submit`,
    out: (topic) => `${prefix}.out.${topic}`,
    status: `${prefix}.status`,
    ctl: (node) => `${prefix}.ctl.${node}`,
    events: `${prefix}.events`,
    registryBucket: `${prefix}_registry`,
    nodeInbox: `_INBOX_${prefix}`,
  };
}

/** Registry key of a node's heartbeat record. */
export const nodeKey = (node: string) => `node.${node}`;
/** Registry key of the master lease. */
export const MASTER_KEY = "master";
