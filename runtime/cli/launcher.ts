/**
 * The launcher: `herald start` without `--node`. It runs every node of the config as its own child
 * process, and the embedded nats-server when the config asks for one, and makes them one unit:
 *
 * - SIGINT, SIGTERM and SIGHUP drain the nodes (SIGTERM to each), then stop the server.
 * - However the launcher ends, SIGKILL included, nothing it started outlives it: each node drains
 *   when its stdin (the launcher's pipe, runtime/lifecycle/launcher-pipe.ts) ends, and the
 *   watchdog (runtime/lifecycle/watchdog.ts) waits for them and then stops the server.
 * - One launcher per config: a lock file (runtime/lifecycle/pid-lock.ts) names the launcher, its
 *   watchdog and its nodes. A second launcher is refused while the first runs; after a launcher
 *   was killed, the next one waits for what it left running to stop, then takes over.
 * - A server that dies is restarted (embedded-server.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadedConfig } from "../config/index.js";
import { createLogger, type Logger } from "../log.js";
import { LockHeldError, PidLock, Watchdog, launcherPipeSpawnOptions } from "../lifecycle/index.js";
import { NODE_HEAP_FLAGS, scriptCommand } from "../platform/index.js";
import { EmbeddedServer } from "./embedded-server.js";

const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
/** How long past its drain timeout a stopping node may take before it is killed, ms. */
const NODE_GRACE_EXTRA_MS = 5_000;
/** What the server may take to stop after the nodes (server.ts's SIGKILL deadline), plus a margin, ms. */
const SERVER_STOP_MS = 10_000;

export interface LaunchFlags {
  server?: string;
}

export async function launchCluster(loaded: LoadedConfig, flags: LaunchFlags): Promise<number> {
  const { config } = loaded;
  const log = createLogger("launcher");
  const nodeGraceMs = config.supervisor.drainTimeoutMs + NODE_GRACE_EXTRA_MS;
  const lock = await PidLock.acquire(launcherLockFile(loaded.file), {
    resource: `the cluster of ${loaded.file}`,
    role: "herald launcher",
    orphanWaitMs: nodeGraceMs + SERVER_STOP_MS,
    onWait: (alive) => log.warn(`waiting for ${LockHeldError.names(alive)}, left running by a launcher that is gone, to stop`),
  });
  try {
    return await run(loaded, flags, { lock, log, nodeGraceMs });
  } finally {
    lock.release();
  }
}

/** Where the launcher's lock of a config lives: one file per config file (by its real path). */
export function launcherLockFile(configFile: string): string {
  const id = createHash("sha256").update(realpathSync(configFile)).digest("hex").slice(0, 16);
  return join(tmpdir(), `herald-launcher-${id}.lock`);
}

async function run(loaded: LoadedConfig, flags: LaunchFlags, ctx: { lock: PidLock; log: Logger; nodeGraceMs: number }): Promise<number> {
  const { config } = loaded;
  const { lock, log, nodeGraceMs } = ctx;
  const children = new Map<string, ChildProcess>();
  let failures = 0;
  let stopping = false;
  const stopAll = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${why}: stopping all nodes`);
    for (const c of children.values()) c.kill("SIGTERM");
    // A node that has not exited well after its drain timeout is stuck: end it.
    setTimeout(() => {
      for (const [name, c] of children) {
        log.warn(`node ${name} did not stop within ${nodeGraceMs} ms: killing it`);
        c.kill("SIGKILL");
      }
    }, nodeGraceMs).unref();
  };
  // From the start: a signal during the server's start must not leave it running.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => stopAll(sig));

  // Before anything it must watch: this process may be killed from here on.
  const watchdog = Watchdog.start({ nodeGraceMs, command: (script, args) => scriptCommand(script, args, []), log });
  if (watchdog.pid !== undefined) lock.add(watchdog.pid, "watchdog");
  let server: EmbeddedServer | undefined;
  if (config.nats.embedded) {
    try {
      server = await EmbeddedServer.start(loaded, {
        log,
        onSpawn: (pid) => watchdog.watch("server", pid),
        onGiveUp: (reason) => {
          failures++;
          stopAll(reason);
        },
      });
    } catch (err) {
      await watchdog.close();
      throw err;
    }
  }

  const exits: Promise<void>[] = [];
  for (const node of stopping ? [] : config.nodes) {
    const args = ["start", "-c", loaded.file, "--node", node.name];
    if (flags.server) args.push("--server", flags.server);
    // This process's runtime flags, and a small young generation for the node's main thread.
    const [cmd, argv] = scriptCommand(CLI_MAIN, args, [...process.execArgv, ...NODE_HEAP_FLAGS]);
    const child = spawn(cmd, argv, launcherPipeSpawnOptions());
    child.stdin?.on("error", () => undefined);
    if (child.pid !== undefined) {
      watchdog.watch("node", child.pid);
      lock.add(child.pid, `node ${node.name}`);
    }
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
  if (!stopping) log.info(`started ${config.nodes.length} nodes; Ctrl-C drains and stops them`);
  await Promise.all(exits);
  await server?.stop();
  await watchdog.close();
  return failures === 0 ? 0 : 1;
}
