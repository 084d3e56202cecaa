/**
 * `herald start`: with --node, that node in this process (multi-host deployments); without, every
 * node of the config as its own child process, plus the embedded nats-server when configured.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { ConfigError, type LoadedConfig } from "../../config/index.js";
import { Renderer } from "../../../actors/processor/render.js";
import { HeraldError } from "../../errors.js";
import { createLogger } from "../../log.js";
import { startNatsServer, type NatsServerHandle } from "../../nats/server.js";
import { runNode } from "../../node/run-node.js";
import { isDeno } from "../../platform/index.js";
import { loadFromFlags, type CommonFlags } from "../context.js";

export interface StartFlags extends CommonFlags {
  node?: string;
}

const CLI_MAIN = fileURLToPath(new URL("../main.js", import.meta.url));

export async function startCommand(flags: StartFlags): Promise<number> {
  // The whole config is validated before anything starts, templates included.
  const loaded = await loadFromFlags(flags);
  checkTemplates(loaded);
  if (flags.node) {
    if (!loaded.config.nodes.some((n) => n.name === flags.node)) {
      const known = loaded.config.nodes.map((n) => n.name).join(", ");
      throw new HeraldError("USAGE", `no node named "${flags.node}" in ${loaded.file} (nodes: ${known})`);
    }
    return runNode(loaded, flags.node);
  }
  return launchCluster(loaded, flags);
}

/** Templates parse only with the template engine, so the config loader cannot check them. */
function checkTemplates(loaded: LoadedConfig): void {
  const issues = new Renderer(loaded.config.topics)
    .templateErrors()
    .map((e) => ({ path: `topics.${e.topic}.template.${e.field}`, message: `does not parse: ${e.error}` }));
  if (issues.length > 0) throw ConfigError.fromIssues(issues, { shown: loaded.file, absolute: loaded.file });
}

async function launchCluster(loaded: LoadedConfig, flags: StartFlags): Promise<number> {
  const { config } = loaded;
  const log = createLogger("launcher");
  let nats: NatsServerHandle | undefined;
  if (config.nats.embedded) {
    nats = await startNatsServer({
      host: config.nats.host,
      port: config.nats.port,
      storeDir: config.nats.storeDir,
      serverName: `herald-${config.cluster}`,
      logFile: join(config.nats.storeDir, "nats-server.log"),
      // Its own process group: Ctrl-C reaches the nodes, which drain through NATS before we stop it.
      detached: true,
    });
    log.info("embedded nats-server ready", { url: nats.url, storeDir: config.nats.storeDir });
  }
  const children = new Map<string, ChildProcess>();
  const exits: Promise<void>[] = [];
  let failures = 0;
  let stopping = false;
  for (const node of config.nodes) {
    const args = [CLI_MAIN, "start", "-c", loaded.file, "--node", node.name];
    if (flags.server) args.push("--server", flags.server);
    const [cmd, argv] = isDeno ? [process.execPath, ["run", "-A", ...args]] : [process.execPath, [...process.execArgv, ...args]];
    const child = spawn(cmd, argv, { stdio: ["ignore", "inherit", "inherit"] });
    children.set(node.name, child);
    exits.push(
      new Promise((resolve) => {
        child.on("exit", (code, signal) => {
          children.delete(node.name);
          if (code === 0) log.info(`node ${node.name} exited`);
          else {
            if (!stopping) failures++;
            log.warn(`node ${node.name} ended (${signal ?? `code ${code}`}); the other nodes keep running`);
          }
          resolve();
        });
      }),
    );
  }
  log.info(`started ${config.nodes.length} nodes; Ctrl-C drains and stops them`);
  const stopAll = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: stopping all nodes`);
    for (const c of children.values()) c.kill("SIGTERM");
    // A node that has not exited well after its drain timeout is stuck: end it.
    const grace = config.supervisor.drainTimeoutMs + 5000;
    setTimeout(() => {
      for (const [name, c] of children) {
        log.warn(`node ${name} did not stop within ${grace} ms: killing it`);
        c.kill("SIGKILL");
      }
    }, grace).unref();
  };
  process.on("SIGINT", () => stopAll("SIGINT"));
  process.on("SIGTERM", () => stopAll("SIGTERM"));
  await Promise.all(exits);
  if (nats) await nats.stop();
  return failures === 0 ? 0 : 1;
}
