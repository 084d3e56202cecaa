import { connect, type NatsConnection } from "@nats-io/transport-node";

/** Connection options shared by supervisors, actors and the CLI. */
export interface ConnectOptions {
  servers: string[];
  /** Shown by `nats server report connections`: `herald:<node>:<actor>`. */
  name: string;
  /**
   * Keep retrying the first connection instead of failing (long-running processes). The CLI
   * sets this to false so a wrong address fails fast with a clear line.
   */
  waitOnFirstConnect?: boolean;
}

/** Connects with reconnects forever: a node outlives broker restarts. */
export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  return connect({
    servers: opts.servers,
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: opts.waitOnFirstConnect ?? true,
    pingInterval: 10_000,
  });
}
