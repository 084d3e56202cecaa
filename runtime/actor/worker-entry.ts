/**
 * Entry module of every actor thread. It exposes the control API at once (comlink must be
 * listening before any top-level await), then waits for `init` to learn which actor it is.
 */
import * as Comlink from "comlink";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { createLogger } from "../log.js";
import { configAccess, connectNats } from "../nats/connect.js";
import { parentEndpoint } from "../platform/index.js";
import type { Actor } from "./actor.js";
import { loadActorFactory } from "./kinds.js";
import { EMPTY_SNAPSHOT, Meter } from "../metrics/meter.js";
import type { ActorControl, ActorInit, ActorReport } from "./protocol.js";
import { names } from "../names.js";

let actor: Actor | undefined;
let nc: NatsConnection | undefined;
const meter = new Meter();

const control: ActorControl = {
  async init(init: ActorInit): Promise<void> {
    const log = createLogger(`${init.node}/${init.id}`);
    // The supervisor validated the config; this thread gets its structured clone, as is. (Not
    // validating again keeps zod out of the threads that have no other use for it.)
    const config = init.config as HeraldConfig;
    nc = await connectNats({
      ...configAccess(config.nats),
      servers: init.servers,
      name: `herald:${init.node}:${init.id}`,
      inboxPrefix: names(init.subjectPrefix).nodeInbox,
    });
    const reconnects = meter.counter("herald_nats_reconnects_total", { connection: init.kind });
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnects.add();
    })().catch(() => undefined);
    const createActor = await loadActorFactory(init.kind);
    actor = createActor({ init, config, nc, names: names(init.subjectPrefix), log, meter });
    await actor.start();
  },
  ping: () => Date.now(),
  report(): ActorReport {
    return { stats: actor?.stats() ?? { processed: 0, failed: 0 }, metrics: actor ? meter.snapshot() : EMPTY_SNAPSHOT };
  },
  request(body: unknown): Promise<unknown> {
    if (!actor) return Promise.reject(new Error("the actor is not started yet"));
    return actor.request(body);
  },
  async drain(timeoutMs: number): Promise<void> {
    const work = (async () => {
      await actor?.drain();
      if (nc && !nc.isClosed()) await nc.drain();
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([work, deadline]);
    clearTimeout(timer);
  },
  crash(reason: string): void {
    // Thrown from a timer, outside comlink's handler, so it is uncaught and ends the thread
    // exactly as a bug in an actor would.
    setTimeout(() => {
      throw new Error(`fault drill: ${reason}`);
    }, 0);
  },
  hang(): void {
    setTimeout(() => {
      for (;;) {
        // Spins until the supervisor's ping times out and it terminates this thread.
      }
    }, 0);
  },
};

Comlink.expose(control, parentEndpoint());
