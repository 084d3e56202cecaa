/**
 * The base every actor kind extends. An actor lives on its own worker thread with its own NATS
 * connection; the supervisor drives it only through start/drain/stats.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import type { Logger } from "../log.js";
import type { Meter } from "../metrics/meter.js";
import type { ActorCounters, ActorInit } from "./protocol.js";
import { type Names } from "../names.js";

/** What an actor is given when it starts. */
export interface ActorContext {
  init: ActorInit;
  config: HeraldConfig;
  nc: NatsConnection;
  names: Names;
  log: Logger;
  /** The actor's metrics; the supervisor reads them with every ping (runtime/metrics). */
  meter: Meter;
}

export abstract class Actor {
  protected readonly ctx: ActorContext;
  protected processed = 0;
  protected failed = 0;

  constructor(ctx: ActorContext) {
    this.ctx = ctx;
  }

  /** Subscribes and begins work; resolves once the actor is ready. */
  abstract start(): Promise<void>;

  /**
   * Stops taking new work and finishes what is in flight. The default has nothing in flight;
   * the NATS connection is drained by the runtime afterwards.
   */
  async drain(): Promise<void> {}

  /** Kind-specific gauges merged into the counters. */
  protected gauges(): Record<string, number> {
    return {};
  }

  /** A request from the supervisor (see ActorControl.request); kinds that take one override it. */
  async request(_body: unknown): Promise<unknown> {
    throw new Error(`a ${this.ctx.init.kind} actor takes no requests from its supervisor`);
  }

  stats(): ActorCounters {
    return { ...this.gauges(), processed: this.processed, failed: this.failed };
  }
}

/** A module under `actors/<kind>/` exports one of these as `createActor`. */
export type ActorFactory = (ctx: ActorContext) => Actor;
