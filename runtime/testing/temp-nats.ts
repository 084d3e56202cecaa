/** A throwaway nats-server: JetStream on a free port, store dir in the OS temp dir. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startNatsServer, type NatsServerHandle } from "../nats/server.js";

export interface TempNats {
  url: string;
  port: number;
  storeDir: string;
  server: NatsServerHandle;
  /** Every server: `[server]`, or each server of a cluster (LocalClusterOptions.natsCluster). */
  servers: readonly NatsServerHandle[];
  /** Stops the server and removes its store dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a nats-server with JetStream on a free port and a fresh store dir under the OS temp dir;
 * `config` is extra server config text (e.g. `max_payload: 65536`).
 * Call `stop()` in a cleanup hook (`afterEach`/`afterAll`/`onTestFinished`).
 */
export async function startTempNats(opts: { startTimeoutMs?: number; config?: string } = {}): Promise<TempNats> {
  const storeDir = await mkdtemp(path.join(os.tmpdir(), "herald-test-"));
  let server: NatsServerHandle;
  try {
    let configFile: string | undefined;
    if (opts.config !== undefined) {
      // Beside the store, so the cleanup below removes it too.
      configFile = path.join(storeDir, "server.conf");
      await writeFile(configFile, opts.config);
    }
    server = await startNatsServer({ storeDir, startTimeoutMs: opts.startTimeoutMs ?? 10_000, configFile });
  } catch (err) {
    await rm(storeDir, { recursive: true, force: true });
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port,
    storeDir,
    server,
    servers: [server],
    stop: () =>
      (stopping ??= (async () => {
        try {
          await server.stop();
        } finally {
          await rm(storeDir, { recursive: true, force: true });
        }
      })()),
  };
}
