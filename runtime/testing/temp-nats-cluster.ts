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
  /** Servers in the cluster. @defaultValue 3 (or one per host of `hosts`) */
  size?: number;
  /** Extra config text for every server (e.g. authorization). */
  config?: string;
  /**
   * One server per host (a namespace of runtime/testing/netns.ts): server i listens on host i's
   * address, clients on 4222 and routes on 6222 (each host has its own ports), and is run through
   * its `launcher`. @defaultValue all servers on loopback, free ports, no launcher
   */
  hosts?: readonly NatsHost[];
}

/** Where one server of the cluster runs. */
export interface NatsHost {
  /** The address it listens on (clients and routes). */
  ip: string;
  /** The command it is run through (e.g. `ip netns exec <ns>`); see NatsServerOptions.launcher. */
  launcher: readonly string[];
}

/** Ports of a server alone on its host. */
const HOST_CLIENT_PORT = 4222;
const HOST_ROUTE_PORT = 6222;

export async function startTempNatsCluster(opts: TempNatsClusterOptions = {}): Promise<TempNatsCluster> {
  const hosts = opts.hosts;
  const size = hosts?.length ?? opts.size ?? 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), "herald-cluster-nats-"));
  const routes = hosts
    ? hosts.map((h) => ({ host: h.ip, port: HOST_ROUTE_PORT }))
    : await Promise.all(Array.from({ length: size }, async () => ({ host: "127.0.0.1", port: await freePort() })));
  const servers: NatsServerHandle[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Started together: each waits for its routes, and JetStream for a quorum.
    const started = await Promise.all(
      routes.map(async (own, i) => {
        const others = routes.filter((_, j) => j !== i).map((r) => `nats-route://${r.host}:${r.port}`);
        const configFile = path.join(dir, `s${i + 1}.conf`);
        await writeFile(
          configFile,
          `cluster {\n  name: herald-test\n  listen: ${own.host}:${own.port}\n  routes: [${others.join(", ")}]\n}\n${opts.config ?? ""}\n`,
        );
        const host = hosts?.[i];
        return startNatsServer({
          storeDir: path.join(dir, `s${i + 1}`),
          serverName: `s${i + 1}`,
          configFile,
          startTimeoutMs: 20_000,
          ...(host ? { host: host.ip, port: HOST_CLIENT_PORT, launcher: host.launcher } : {}),
        });
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
