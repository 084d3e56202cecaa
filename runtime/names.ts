/**
 * Every name Herald puts on NATS, in one place: subjects, streams, consumers, KV buckets, KV keys
 * and headers. All derive from the configurable prefix (default `herald`), so two clusters can
 * share one NATS account without colliding.
 *
 * | what             | name                 | subjects / keys                                   |
 * | ---------------- | -------------------- | ------------------------------------------------- |
 * | message queue    | `HERALD_QUEUE`       | `herald.in.<topic>`                               |
 * | exception queue  | `HERALD_EXCEPTIONS`  | `herald.exc.<topic>`                              |
 * | dead letters     | `HERALD_DLQ`         | `herald.dlq.<topic>`, `._unknown`, `._body.<topic>` |
 * | registry (KV)    | `herald_registry`    | `node.<name>`, `master`                           |
 * | rules (KV)       | `herald_rules`       | `default`, `topic.<T>`, `pause.all`, `pause.topic.<T>` |
 * | poison (KV)      | `herald_poison`      | `<stream>.<seq>`, `death.<node>.<actor>`          |
 * | collectors (KV)  | `herald_collectors`  | `checkpoint.<name>`, `status.<name>`              |
 * | recipients (KV)  | `herald_recipients`  | `r.<id>`                                          |
 * | endpoints (KV)   | `herald_endpoints`   | `e.<hash>`: circuit breakers                     |
 * | sse retention    | `HERALD_SSE_<topic>` | `herald.sse.<topic>.<recipient>`                  |
 * | scheduled        | `HERALD_SCHEDULED`   | `herald.sched.<topic>`                            |
 * | released marks   | `HERALD_RELEASED`    | `herald.released.<topic>.<base64url id>`          |
 * | server clock     | `HERALD_CLOCK`       | `herald.clock.<prober>`                           |
 *
 * What lives in the streams and why is in pipeline/streams.ts.
 */
import { Buffer } from "node:buffer";

export interface Names {
  prefix: string;
  /** `herald.in.<topic>`: fire-and-forget ingest, captured by the queue stream. */
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
  /** Queue group of processor actors: `herald.work.process`. */
  process: string;
  /** Queue group of pusher actors: `herald.work.push`. */
  push: string;
  /**
   * Inbox prefix of every node connection (`_INBOX_herald`): replies to nodes land where only
   * nodes may subscribe, apart from the `_INBOX.>` publishers and operators use.
   */
  nodeInbox: string;

  queueStream: string;
  /** Subject filter the queue stream captures: `herald.in.>`. */
  queueSubjects: string;
  exceptionStream: string;
  /** Subject filter the exception stream captures: `herald.exc.>`. */
  exceptionSubjects: string;
  /** `herald.exc.<topic>`. */
  exc(topic: string): string;
  dlqStream: string;
  /** Subject filter the dead-letter stream captures: `herald.dlq.>`. */
  dlqSubjects: string;
  /** Dead letters of a configured topic. */
  dlq(topic: string): string;
  /** Dead letters of every topic that is not configured (one subject, however many junk topics). */
  dlqUnknown: string;
  /** The original of a dead letter too large to carry it (see DeadLetter.body). */
  dlqBody(topicToken: string): string;
  /** Durable consumer the sub-queue actors share on one topic of the queue stream. */
  queueConsumer(topic: string): string;
  /** Durable consumer the retry loops share on one topic of the exception stream. */
  exceptionConsumer(topic: string): string;

  /** KV bucket holding each node's heartbeat record and the master lease. */
  registryBucket: string;
  /** KV bucket of the runtime rules and pauses. */
  rulesBucket: string;
  /** KV bucket of poison marks and actors' last deaths (see pipeline/poison.ts). */
  poisonBucket: string;
  /** KV bucket of collector checkpoints and status records. */
  collectorsBucket: string;
  /** KV bucket of recipients and their addresses per channel (runtime/pipeline/recipients.ts). */
  recipientsBucket: string;
  /** KV bucket of the endpoints' circuit breakers (runtime/pipeline/endpoints.ts). */
  endpointsBucket: string;
  /** `herald.rate.<topic>`: a sub-queue actor asks the master for push tokens of a rate-limited topic. */
  rate(topic: string): string;
  /** `herald.events.endpoint.<state>`: a breaker changed state (JSON, for operators' alerting). */
  endpointEvent(state: string): string;

  /** Retention stream of an `sse` topic: what its streams replay to a client that reconnects. */
  sseStream(topic: string): string;
  /** `herald.sse.<topic>.>`: what an `sse` topic's retention stream captures. */
  sseSubjects(topic: string): string;
  /** `herald.sse.<topic>.<recipient>`: one recipient's pushes of an `sse` topic. */
  sse(topic: string, recipient: string): string;
  /** `herald.sse.>`: every `sse` push, which each node's HTTP port follows live. */
  sseAll: string;

  /** Scheduled messages not yet due (runtime/scheduled/). */
  scheduledStream: string;
  /** `herald.sched.>`: what the scheduled stream captures. */
  scheduledSubjects: string;
  /** `herald.sched.<topic>`: a topic's scheduled messages. */
  sched(topic: string): string;
  /** Marks of released scheduled messages, so a cancel can tell "already released" from "unknown". */
  releasedStream: string;
  releasedSubjects: string;
  /** `herald.released.<topic>.<id as base64url>` (ids may hold dots, which subjects cannot). */
  released(topic: string, id: string): string;
  /** Probes of the JetStream server's clock: each prober's latest, stored for its timestamp. */
  clockStream: string;
  clockSubjects: string;
  /** `herald.clock.<prober>`. */
  clock(prober: string): string;
}

export function names(prefix = "herald"): Names {
  const up = prefix.toUpperCase().replace(/-/g, "_");
  return {
    prefix,
    in: (topic) => `${prefix}.in.${topic}`,
    submit: `${prefix}.submit`,
    out: (topic) => `${prefix}.out.${topic}`,
    status: `${prefix}.status`,
    ctl: (node) => `${prefix}.ctl.${node}`,
    events: `${prefix}.events`,
    process: `${prefix}.work.process`,
    push: `${prefix}.work.push`,
    nodeInbox: `_INBOX_${prefix}`,
    queueStream: `${up}_QUEUE`,
    queueSubjects: `${prefix}.in.>`,
    exceptionStream: `${up}_EXCEPTIONS`,
    exceptionSubjects: `${prefix}.exc.>`,
    exc: (topic) => `${prefix}.exc.${topic}`,
    dlqStream: `${up}_DLQ`,
    dlqSubjects: `${prefix}.dlq.>`,
    dlq: (topic) => `${prefix}.dlq.${topic}`,
    dlqUnknown: `${prefix}.dlq._unknown`,
    dlqBody: (topicToken) => `${prefix}.dlq._body.${topicToken}`,
    queueConsumer: (topic) => `subqueue-${topic}`,
    exceptionConsumer: (topic) => `retry-${topic}`,
    registryBucket: `${prefix}_registry`,
    rulesBucket: `${prefix}_rules`,
    poisonBucket: `${prefix}_poison`,
    collectorsBucket: `${prefix}_collectors`,
    recipientsBucket: `${prefix}_recipients`,
    endpointsBucket: `${prefix}_endpoints`,
    rate: (topic) => `${prefix}.rate.${topic}`,
    endpointEvent: (state) => `${prefix}.events.endpoint.${state}`,
    sseStream: (topic) => `${up}_SSE_${topic}`,
    sseSubjects: (topic) => `${prefix}.sse.${topic}.>`,
    sse: (topic, recipient) => `${prefix}.sse.${topic}.${recipient}`,
    sseAll: `${prefix}.sse.>`,
    scheduledStream: `${up}_SCHEDULED`,
    scheduledSubjects: `${prefix}.sched.>`,
    sched: (topic) => `${prefix}.sched.${topic}`,
    releasedStream: `${up}_RELEASED`,
    releasedSubjects: `${prefix}.released.>`,
    released: (topic, id) => `${prefix}.released.${topic}.${Buffer.from(id).toString("base64url")}`,
    clockStream: `${up}_CLOCK`,
    clockSubjects: `${prefix}.clock.>`,
    clock: (prober) => `${prefix}.clock.${prober}`,
  };
}

/** The consumers of Herald 0.1 (one for every topic); removed at setup, see pipeline/setup.ts. */
export const LEGACY_CONSUMERS = { queue: "subqueue", exceptions: "retry" } as const;

/** Registry keys: a node's heartbeat record, and the master lease. */
export const nodeKey = (node: string) => `node.${node}`;
export const MASTER_KEY = "master";

/** Rules-bucket keys. */
export const RULES_DEFAULT_KEY = "default";
export const rulesKey = (topic: string) => `topic.${topic}`;
export const PAUSE_ALL_KEY = "pause.all";
export const pauseKey = (topic: string) => `pause.topic.${topic}`;
/** A topic's rate limit in the rules bucket (JSON `{ perSecond, burst }`, or `null`: none). */
export const rateLimitKey = (topic: string) => `limit.topic.${topic}`;

/** Poison-bucket keys. */
export const suspectKey = (stream: string, seq: number) => `${stream}.${seq}`;
export const deathKey = (node: string, actor: string) => `death.${node}.${actor}`;
/** Recipients-bucket key of a recipient. */
export const recipientKey = (id: string) => `r.${id}`;

/** Collectors-bucket keys: a collector's checkpoint, and the status record `herald status` shows. */
export const checkpointKey = (name: string) => `checkpoint.${name}`;
export const collectorStatusKey = (name: string) => `status.${name}`;

/** Headers Herald sets on queued messages. */
export const HEADER_ENVELOPE = "Herald-Envelope"; // "1": the payload is a validated msgpack Envelope
export const HEADER_ID = "Herald-Id"; // the message id, on exception and dead-letter messages
/** Fault drills (`faultInjection: true` only): `crash` or `hang` the sub-queue actor reading it. */
export const HEADER_DRILL = "Herald-Drill";
