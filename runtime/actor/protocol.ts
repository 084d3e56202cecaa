/**
 * The control plane between a supervisor and one actor thread (over comlink). The data plane
 * is NATS; nothing here carries messages.
 */
import type { ActorKind } from "../config/index.js";
import type { MetricSnapshot } from "../metrics/meter.js";

/** What an actor needs to start: who it is and where NATS is. Structured-clone safe. */
export interface ActorInit {
  cluster: string;
  node: string;
  id: string;
  kind: ActorKind;
  /** 0-based index of this actor among its kind on its node. */
  index: number;
  servers: string[];
  subjectPrefix: string;
  /** The validated cluster config, as plain JSON. */
  config: unknown;
  /**
   * The master lease epoch this actor works under, for master duties (collectors): the fencing
   * token their checkpoint writes carry. Absent for actors that run on every node.
   */
  epoch?: number;
}

/** Counters every actor reports. */
export interface ActorCounters {
  processed: number;
  failed: number;
  /** Kind-specific gauges (held messages, sub-queues…). */
  [extra: string]: number;
}

/** An actor's counters and its metrics since it started, as its pings carry them. */
export interface ActorReport {
  stats: ActorCounters;
  metrics: MetricSnapshot;
}

/** What the supervisor may call on an actor thread. */
export interface ActorControl {
  init(init: ActorInit): Promise<void>;
  /** Answers at once; used to detect a hung thread. */
  ping(): number;
  /** Counters and metrics; also the supervisor's ping. */
  report(): ActorReport;
  /**
   * A kind's own request from its supervisor, answered by the actor (the ingest actor: an HTTP
   * submission the node's HTTP server received). Rejects for a kind that takes none.
   */
  request(body: unknown): Promise<unknown>;
  /** Finish in-flight work, close NATS, and resolve; the thread is then terminated. */
  drain(timeoutMs: number): Promise<void>;
  /** Fault drill: throw an uncaught error on the thread's event loop, killing it abruptly. */
  crash(reason: string): void;
  /** Fault drill: block the thread's event loop forever, as a livelocked actor would. */
  hang(): void;
}
