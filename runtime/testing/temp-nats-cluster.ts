/**
 * A throwaway JetStream cluster of real nats-servers on loopback: each on free client and route
 * ports with its own store dir, routes to the others, one cluster name. Resolves once JetStream
 * answers (a meta leader is elected), so replicated streams can be created at once.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort, startNatsServer, type NatsServerHandle } from "../nats/server.js";
import { waitFor } from "./wait.js";

export interface TempNatsCluster {
  /** Client URLs, one per server. */
  urls: string[];
  servers: NatsServerHandle[];
  /** Stops every server and removes the store dirs. Idempotent. */
  stop(): Promise<void>;
}

export interface TempNatsClusterOptions {
  /** Servers in the cluster. @defaultValue 3 */
  size?: number;
  /** Extra config text for every server (e.g. authorization). */
  config?: string;
}

export async function startTempNatsCluster(opts: TempNatsClusterOptions = {}): Promise<TempNatsCluster> {
  const size = opts.size ?? 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), "herald-cluster-nats-"));
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const servers: NatsServerHandle[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Started together: each waits for its routes, and JetStream for a quorum.
    const started = await Promise.all(
      routePorts.map(async (port, i) => {
        const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
        const configFile = path.join(dir, `s${i + 1}.conf`);
        await writeFile(
          configFile,
          `cluster {\n  name: herald-test\n  listen: 127.0.0.1:${port}\n  routes: [${routes.join(", ")}]\n}\n${opts.config ?? ""}\n`,
        );
        return startNatsServer({ storeDir: path.join(dir, `s${i + 1}`), serverName: `s${i + 1}`, configFile, startTimeoutMs: 20_000 });
      }),
    );
    servers.push(...started);
    await waitForJetStream(servers.map((s) => s.url));
  } catch (err) {
    await stop();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return { urls: servers.map((s) => s.url), servers, stop: () => (stopping ??= stop()) };
}

/** Until JetStream answers account info through the cluster (its meta leader is elected). */
async function waitForJetStream(urls: string[]): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    await waitFor(async () => (await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo()) !== undefined, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "the JetStream meta leader of the test cluster",
    });
  } finally {
    await nc.close();
  }
}
