/**
 * Runs one node in this process: its supervisor on the main thread, actors on worker threads.
 * SIGTERM, SIGINT, SIGHUP and `herald stop` drain it and end the process with code 0; so does the
 * end of the launcher's pipe, for a node the launcher started (runtime/lifecycle/launcher-pipe.ts).
 */
import type { LoadedConfig } from "../config/index.js";
import { errorText, HeraldError } from "../errors.js";
import { watchLauncherPipe } from "../lifecycle/index.js";
import { createLogger } from "../log.js";
import { configAccess, describeAccess } from "../nats/connect.js";
import { Supervisor } from "../supervisor/supervisor.js";
import { NodeHttpServer } from "./http-server.js";
import { NodeOps } from "./ops.js";

export async function runNode(loaded: LoadedConfig, nodeName: string): Promise<number> {
  const { config } = loaded;
  const log = createLogger(nodeName);
  const supervisor = new Supervisor(config, nodeName, log);
  const onSignal = (sig: string) => {
    log.info(`${sig} received: draining`);
    void supervisor.stop(sig);
  };
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => onSignal(sig));
  // Whatever ended the launcher, SIGKILL included, ends its pipe.
  watchLauncherPipe(() => {
    log.info("launcher gone (its pipe closed): draining");
    void supervisor.stop("launcher gone");
  });
  let crashing = false;
  process.on("uncaughtException", (err) => {
    // Once only: an error raised while logging this one (say, a broken stderr) must not loop.
    if (crashing) return;
    crashing = true;
    log.error("uncaught error on the supervisor thread", { error: errorText(err), stack: err.stack });
    // Drain if we can, but never outlive the drain timeout: a stuck stop must not keep a
    // broken node running.
    setTimeout(() => process.exit(1), config.supervisor.drainTimeoutMs + 2000).unref();
    void supervisor.stop("uncaught error").finally(() => process.exit(1));
  });
  log.info("starting", { cluster: config.cluster, nats: describeAccess(configAccess(config.nats)) });
  const http = await listenHttp(loaded, nodeName, supervisor, log);
  // A signal may come while the node is still starting (say, waiting for NATS): stopping then
  // must not wait for a start that may never finish.
  try {
    await Promise.race([supervisor.start(), supervisor.stopped]);
  } catch (err) {
    // A node that cannot start (a config the server cannot honour, NATS refusing it) lets go of
    // what it opened and ends with the error.
    await supervisor.stop("start failed");
    await http?.close();
    throw err;
  }
  await supervisor.stopped;
  await http?.close();
  return 0;
}

/**
 * The node's HTTP port, when it has one (`nodes[].http.port`): open before the supervisor starts,
 * so probes are answered (not ready yet) while it does.
 */
async function listenHttp(loaded: LoadedConfig, nodeName: string, supervisor: Supervisor, log: ReturnType<typeof createLogger>): Promise<NodeHttpServer | undefined> {
  const { config } = loaded;
  const at = config.nodes.findIndex((n) => n.name === nodeName);
  const port = config.nodes[at]?.http?.port;
  if (port === undefined) return undefined;
  const server = new NodeHttpServer({
    host: config.http.host,
    port,
    token: config.http.token,
    maxBodyBytes: config.http.maxBodyBytes,
    corsOrigins: config.http.corsOrigins,
    app: new NodeOps(supervisor, config, log),
    log: log.child("http"),
  });
  try {
    await server.listen();
  } catch (err) {
    throw new HeraldError("CONFIG", `cannot listen on ${config.http.host}:${port} (nodes[${at}].http.port in ${loaded.file}): ${errorText(err)}; free the port or choose another`);
  }
  log.info("HTTP listening", { url: `http://${config.http.host}:${port}/` });
  return server;
}
