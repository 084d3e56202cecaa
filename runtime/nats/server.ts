/**
 * Launching a real nats-server as a child process: the embedded mode of `herald start` and the
 * per-test servers of the test suite.
 *
 * Ownership: whoever calls {@link startNatsServer} owns the child and must `stop()` it (tests do it
 * in cleanup hooks, the CLI on shutdown). As a safety net, children still running when this Node
 * process exits normally (`process.exit`, end of the event loop) are sent SIGTERM from an `exit`
 * hook. Nothing can run when the parent is SIGKILLed, so a child can outlive a parent killed that
 * way unless something else watches the parent (the launcher's watchdog does, through `onSpawn`);
 * with `detached: false` (the default) a terminal's Ctrl-C reaches the child too.
 *
 * One store dir, one server: from before the spawn until `stop()`, a lock file in the store dir
 * (`nats-server.lock`, see runtime/lifecycle/pid-lock.ts) names the process that started the
 * server and, once spawned, the server; a start on a store dir whose lock names a live process is
 * refused before nats-server is spawned. So is a start on a port where something already listens:
 * nats-server opens (and recovers) its store before it binds its port, so failing on the port
 * would come too late for the store.
 *
 * Only `node:` modules (and Herald's own) are used, so this also runs under Deno 2's node
 * compatibility.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, closeSync, constants, openSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { HeraldError } from "../errors.js";
import { PidLock } from "../lifecycle/index.js";
import { collectOutput, fileSize, fileTail, OUTPUT_TAIL_LINES, OutputTail } from "./server-output.js";

const INSTALL_HINT = "(Debian/Ubuntu: sudo apt-get install nats-server)";
const WELL_KNOWN_PATHS = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
const STOP_GRACE_MS = 5_000;
const PROBE_INTERVAL_MS = 50;
/** Retries when a port picked by {@link freePort} is taken by someone else before the server binds it. */
const PORT_RACE_ATTEMPTS = 3;

/** No usable nats-server binary; the message says how to install one. */
export class NatsServerMissingError extends HeraldError {
  override readonly name = "NatsServerMissingError";

  constructor(message = `nats-server not found: install it ${INSTALL_HINT} or set NATS_SERVER_BIN`, options: ErrorOptions = {}) {
    super("NATS_SERVER_MISSING", message, options);
  }

  /** NATS_SERVER_BIN names something that is not an executable file. */
  static badEnv(value: string): NatsServerMissingError {
    return new NatsServerMissingError(
      `nats-server not found: NATS_SERVER_BIN=${value} is not an executable file; ` +
        `install nats-server ${INSTALL_HINT} or point NATS_SERVER_BIN at it`,
    );
  }
}

/** nats-server exited, could not be spawned, or did not become ready before the deadline. */
export class NatsServerStartError extends HeraldError {
  override readonly name = "NatsServerStartError";
  private portTakenBeforeStart = false;

  constructor(
    message: string,
    /** The last lines nats-server printed before the failure. */
    readonly output: readonly string[],
    options: ErrorOptions = {},
  ) {
    super("NATS_SERVER_START", output.length > 0 ? `${message}; its last output:\n${output.join("\n")}` : message, options);
  }

  /** Something already listens on the port: refused before nats-server was spawned. */
  static portTaken(host: string, port: number, serverName: string | undefined): NatsServerStartError {
    const who = serverName === undefined ? "" : ` (a nats-server named "${serverName}" answers there: one left running by an earlier start?)`;
    const err = new NatsServerStartError(
      `cannot start nats-server on ${host}:${port}: address already in use${who}; stop what holds the port, or choose another`,
      [],
    );
    err.portTakenBeforeStart = true;
    return err;
  }

  /** True when the server could not bind its client port because another process holds it. */
  get portInUse(): boolean {
    return this.portTakenBeforeStart || this.output.some((line) => line.includes("address already in use"));
  }
}

export interface NatsServerOptions {
  /** Address the client port binds to. @defaultValue "127.0.0.1" */
  host?: string;
  /** Client port; 0 or absent picks a free one. Kept across `restart()`. */
  port?: number;
  /** JetStream store directory (`-sd`); created recursively. Kept across `restart()`. */
  storeDir: string;
  /** Server name (`-n`). @defaultValue a unique `herald-…` name */
  serverName?: string;
  /**
   * When set, the server's output is appended to this file (its directory is created) by the
   * server itself, so it keeps logging, and living, should this process die before it.
   */
  logFile?: string;
  /**
   * Server config file (`-c`) with settings that have no command-line flag, e.g. `max_payload`.
   * The flags Herald passes (host, port, JetStream, store dir, name) take precedence over it.
   */
  configFile?: string;
  /** Deadline for the server to accept clients, in ms, per start or restart. @defaultValue 10000 */
  startTimeoutMs?: number;
  /**
   * Run the server in its own process group, so a terminal's Ctrl-C reaches only the parent,
   * which can then drain its clients before it stops the server. @defaultValue false
   */
  detached?: boolean;
  /**
   * Called with each server process's pid as soon as it is spawned, before it is ready (and again
   * on every restart), so a watchdog knows of it even when this process dies during the start.
   */
  onSpawn?: (pid: number) => void;
  /**
   * This process as the store dir's lock names it to a refused second start.
   * @defaultValue `node <script>` of this process
   */
  ownerRole?: string;
  /**
   * A command the server is run through, e.g. `["ip", "netns", "exec", "ns1"]` to run it in a
   * network namespace: spawned as `...launcher nats-server <args>`. It must exec the server (not
   * fork it), so the pid, signals and exit are the server's own. @defaultValue none
   */
  launcher?: readonly string[];
}

export interface NatsServerHandle {
  /** Client URL, e.g. `nats://127.0.0.1:40123`. */
  readonly url: string;
  readonly port: number;
  /** Pid of the current server process (changes on `restart()`). */
  readonly pid: number;
  /** Settles with the current process's exit code (null when ended by a signal); never rejects. */
  readonly exited: Promise<number | null>;
  /** The signal that ended the current process, once it has exited by one; else null. */
  readonly exitSignal: NodeJS.Signals | null;
  /** SIGTERM, wait for exit; SIGKILL after 5 s; then frees the store dir's lock. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (chaos tests: no graceful JetStream shutdown); the store dir stays locked. */
  kill(): Promise<void>;
  /** Stop, then start again on the same port and store dir; JetStream data is kept. */
  restart(): Promise<void>;
}

/**
 * Locates the nats-server binary: `NATS_SERVER_BIN` (which, when set, must be executable), then
 * the usual install paths, then `PATH`.
 * @throws {NatsServerMissingError} with install instructions when none is found.
 */
export function findNatsServer(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (isExecutableFile(fromEnv)) return fromEnv;
    throw NatsServerMissingError.badEnv(fromEnv);
  }
  const exe = process.platform === "win32" ? "nats-server.exe" : "nats-server";
  const onPath = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => path.join(dir, exe));
  const found = [...WELL_KNOWN_PATHS, ...onPath].find(isExecutableFile);
  if (found === undefined) throw new NatsServerMissingError();
  return found;
}

/** A TCP port the OS reports free on `host` right now (listen on port 0, read it, close). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * Spawns `nats-server -a HOST -p PORT -js -sd STORE_DIR -n NAME` and resolves once it accepts
 * clients. The caller owns the returned server and must `stop()` it.
 * @throws {NatsServerMissingError} when no binary is found.
 * @throws {LockHeldError} when a live process holds the store dir.
 * @throws {NatsServerStartError} when the port is taken, or the server exits early or misses the
 * deadline (with its last output).
 */
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const host = opts.host ?? "127.0.0.1";
  const settings: LaunchSettings = {
    bin,
    host,
    port: 0,
    storeDir: path.resolve(opts.storeDir),
    serverName: opts.serverName ?? `herald-${process.pid}-${randomBytes(4).toString("hex")}`,
    logFile: opts.logFile === undefined ? undefined : path.resolve(opts.logFile),
    configFile: opts.configFile === undefined ? undefined : path.resolve(opts.configFile),
    startTimeoutMs: opts.startTimeoutMs ?? 10_000,
    detached: opts.detached ?? false,
    onSpawn: opts.onSpawn,
    ownerRole: opts.ownerRole ?? `node ${path.basename(process.argv[1] ?? "")}`.trim(),
    launcher: opts.launcher ?? [],
  };
  await mkdir(settings.storeDir, { recursive: true });
  if (settings.logFile !== undefined) await mkdir(path.dirname(settings.logFile), { recursive: true });

  const lock = await lockStoreDir(settings);
  const autoPort = opts.port === undefined || opts.port === 0;
  for (let attempt = 1; ; attempt++) {
    settings.port = autoPort ? await freePort(host) : (opts.port as number);
    try {
      return new ServerProcess(settings, lock, await launch(settings, lock));
    } catch (err) {
      const raced = autoPort && err instanceof NatsServerStartError && err.portInUse;
      if (!raced || attempt >= PORT_RACE_ATTEMPTS) {
        lock.release();
        throw err;
      }
    }
  }
}

function lockStoreDir(settings: LaunchSettings): Promise<PidLock> {
  return PidLock.acquire(path.join(settings.storeDir, "nats-server.lock"), {
    resource: `the nats-server store dir ${settings.storeDir}`,
    role: settings.ownerRole,
    otherwise: "use another store dir",
  });
}

interface LaunchSettings {
  bin: string;
  host: string;
  port: number;
  storeDir: string;
  serverName: string;
  logFile: string | undefined;
  configFile: string | undefined;
  startTimeoutMs: number;
  detached: boolean;
  onSpawn: ((pid: number) => void) | undefined;
  ownerRole: string;
  launcher: readonly string[];
}

/** One incarnation of the server process. */
interface Running {
  child: ChildProcess;
  pid: number;
  /** Settles after the process exited and its output pipes (if any) were fully read. */
  exited: Promise<number | null>;
}

class ServerProcess implements NatsServerHandle {
  readonly url: string;
  readonly port: number;

  constructor(
    private readonly settings: LaunchSettings,
    private lock: PidLock,
    private current: Running,
  ) {
    this.port = settings.port;
    this.url = `nats://${formatHost(connectHost(settings.host))}:${settings.port}`;
  }

  get pid(): number {
    return this.current.pid;
  }

  get exited(): Promise<number | null> {
    return this.current.exited;
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.current.child.signalCode;
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    this.lock.release();
  }

  async kill(): Promise<void> {
    signal(this.current.child, "SIGKILL");
    await this.current.exited;
  }

  async restart(): Promise<void> {
    await this.stopProcess();
    if (this.lock.released) this.lock = await lockStoreDir(this.settings);
    this.current = await launch(this.settings, this.lock);
  }

  private async stopProcess(): Promise<void> {
    const { child, exited } = this.current;
    signal(child, "SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), STOP_GRACE_MS);
    });
    const outcome = await Promise.race([exited, forced]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      signal(child, "SIGKILL");
      await exited;
    }
  }
}

/**
 * Spawns the server and waits until it accepts clients; on failure nothing is left running.
 * The caller holds the store dir's lock, which gets to name the server.
 */
async function launch(settings: LaunchSettings, lock: PidLock): Promise<Running> {
  const { bin, host, port, storeDir, serverName, logFile, configFile, startTimeoutMs, detached, launcher } = settings;
  // Whoever answers there now is not ours; our server would open the store before failing on the port.
  const squatter = await probeInfo(connectHost(host), port, 1_000, { acceptAny: true });
  if (squatter !== null) throw NatsServerStartError.portTaken(host, port, squatter.server_name);
  const args = [...(configFile === undefined ? [] : ["-c", configFile]), "-a", host, "-p", String(port), "-js", "-sd", storeDir, "-n", serverName];
  // With a log file the server writes to it itself, not through pipes of ours: a server that
  // outlives this process (a watchdog stops it later) must not die of SIGPIPE writing to a pipe
  // nobody reads any more, as Go programs do on stdout and stderr.
  const logStart = logFile === undefined ? 0 : fileSize(logFile);
  const logFd = logFile === undefined ? undefined : openSync(logFile, "a");
  let child: ChildProcess;
  try {
    const [cmd, argv] = launcher.length === 0 ? [bin, args] : [launcher[0]!, [...launcher.slice(1), bin, ...args]];
    child = spawn(cmd, argv, { stdio: ["ignore", logFd ?? "pipe", logFd ?? "pipe"], detached });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  trackUntilExit(child);
  if (child.pid !== undefined) {
    // First the watchdog (this process may die any moment from now on), then the lock.
    settings.onSpawn?.(child.pid);
    lock.add(child.pid, "nats-server");
  }

  const tail = new OutputTail(OUTPUT_TAIL_LINES);
  let spawnError: Error | undefined;
  const exited = collectOutput(child, tail, (err) => (spawnError = err));
  const lastOutput = () => (logFile === undefined ? tail.lines() : fileTail(logFile, logStart));

  const failure = (message: string) => new NatsServerStartError(message, lastOutput(), { cause: spawnError });
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const exitedEarly = await Promise.race([exited.then(() => true), delay(PROBE_INTERVAL_MS).then(() => false)]);
    if (exitedEarly) {
      const how = spawnError ? `could not be started (${spawnError.message})` : `exited with code ${await exited}`;
      throw failure(`nats-server ${how} before accepting clients on ${host}:${port}`);
    }
    // Matching the INFO's server_name proves it is our child answering, not whoever else holds the port.
    const info = await probeInfo(connectHost(host), port, Math.max(1, Math.min(1_000, deadline - Date.now())));
    if (info?.server_name === serverName) return { child, pid: child.pid as number, exited };
    if (Date.now() >= deadline) {
      signal(child, "SIGKILL");
      await exited;
      throw failure(`nats-server did not accept clients on ${host}:${port} within ${startTimeoutMs} ms`);
    }
  }
}

/**
 * Connects, reads the server's INFO line, disconnects; null when nothing answers in time. With
 * `acceptAny`, whatever accepts the connection counts as an answer (`{}` when it sends no INFO).
 */
function probeInfo(
  host: string,
  port: number,
  timeoutMs: number,
  opts: { acceptAny?: boolean } = {},
): Promise<{ server_name?: string } | null> {
  return new Promise((resolve) => {
    let received = "";
    let connected = false;
    const socket = net.connect({ host, port });
    const done = (info: { server_name?: string } | null) => {
      socket.destroy();
      resolve(info ?? (opts.acceptAny && connected ? {} : null));
    };
    socket.once("connect", () => (connected = true));
    socket.setTimeout(timeoutMs, () => done(null));
    socket.once("error", () => done(null));
    socket.once("close", () => done(null));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      const end = received.indexOf("\r\n");
      if (end < 0) return;
      const line = received.slice(0, end);
      try {
        done(line.startsWith("INFO ") ? (JSON.parse(line.slice(5)) as { server_name?: string }) : null);
      } catch {
        done(null);
      }
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers the child for the process-exit safety net until it exits. */
function trackUntilExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  child.once("error", () => {
    if (child.pid === undefined) live.delete(child);
  });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Only synchronous work is possible here: signal and let the servers shut down on their own.
    process.on("exit", () => {
      for (const c of live) signal(c, "SIGTERM");
    });
  }
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    child.kill(sig);
  } catch {
    // Already gone between the check and the signal.
  }
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where a client connects when the server binds a wildcard address. */
function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
