/**
 * A local cluster for tests, benchmarks and fault drills: a real nats-server on a free port, a
 * config file in a temp dir, and nodes run as real `herald start --node` processes (the compiled
 * CLI in dist/), so they can be SIGKILLed like any process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { existsSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { ConnectionOptions, NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { decode } from "../codec/index.js";
import { collectReports, gatherStatus } from "../supervisor/cluster-status.js";
import type { ClusterStatus, NodeReport } from "../supervisor/status.js";
import { freePort } from "../nats/server.js";
import { LAUNCHER_PIPE_ENV } from "../lifecycle/index.js";
import { repoRoot } from "../platform/repo.js";
import { NODE_HEAP_FLAGS } from "../platform/index.js";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";
import { startTempNatsCluster, type NatsHost } from "./temp-nats-cluster.js";
import { startTempNats, type TempNats } from "./temp-nats.js";
import { waitFor } from "./wait.js";


/** The compiled CLI (`npm run build` first). */
export const CLI = resolve(repoRoot(import.meta.url), "dist/runtime/cli/main.js");
/**
 * Debian's libfaketime, preloaded into nodes with a skewed wall clock. Not the `faketime` command:
 * it forks, so killing it would leave the node running.
 */
export const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/** The Deno binary of the `deno` dev dependency. */
export const DENO = resolve(repoRoot(import.meta.url), "node_modules/.bin/deno");

export interface NodeProc {
  name: string;
  proc: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ClusterEvent {
  type: string;
  node: string;
  at: number;
  epoch?: number;
  actor?: string;
  restarts?: number;
  /** Order of arrival at the test's subscriber. */
  seq: number;
  /** The test process's monotonic clock (`performance.now()`) at arrival. */
  receivedAt: number;
}

export interface LocalClusterOptions {
  nodes?: number;
  intervalMs?: number;
  timeoutMs?: number;
  faultInjection?: boolean;
  actors?: { ingest?: number; collector?: number; subqueue?: number; processor?: number; pusher?: number };
  /** Runtime the nodes run on. @defaultValue "node" */
  runtime?: "node" | "deno";
  /** Give every node an HTTP ingest port (free ports are picked). */
  http?: boolean;
  /** Extra keys for node i's config entry. */
  nodeExtra?: (i: number) => Record<string, unknown>;
  /** Extra top-level config keys. */
  extra?: Record<string, unknown>;
  /**
   * Nodes whose NATS connections (supervisor and actors) go through a TCP proxy of their own, so
   * a drill can partition one node from NATS (`proxy(name).freeze()`). Such a node gets its own
   * config file, identical but for `nats.servers`. @defaultValue []
   */
  proxied?: string[];
  /**
   * Wall-clock offset of a node's process, e.g. `{ n1: "-5s" }`: it runs under `faketime`
   * (Debian package faketime) with its monotonic clock left alone, as a host whose clock is off
   * would. @defaultValue {}
   */
  skew?: Record<string, string>;
  /** Extra nats-server config text, e.g. `max_payload: 65536`. */
  natsConfig?: string;
  /**
   * The `herald` CLI the nodes run (`dist/runtime/cli/main.js` of some build), so a benchmark can
   * run another build side by side with this one. @defaultValue this build's {@link CLI}
   */
  cli?: string;
  /**
   * Run the nodes against a JetStream cluster of this many nats-servers (on loopback) instead of
   * one server, with `nats.replicas` set to `replicas`. @defaultValue one server, 1 replica
   */
  natsCluster?: { size: number; replicas: 1 | 3 | 5; hosts?: readonly NatsHost[] };
  /**
   * How node NAME is launched: `launcher` is a command its process runs through (e.g. `ip netns
   * exec <ns>`, which execs it: the pid stays the node's), and `servers` its own `nats.servers`
   * (it then gets its own config file, as a proxied node does). @defaultValue no launcher, the
   * shared config
   */
  nodeLaunch?: (name: string) => { launcher?: readonly string[]; servers?: readonly string[] };
  /** Options of the harness's own connection (credentials, TLS) for servers that require them. */
  harness?: Partial<ConnectionOptions>;
  /** Environment added to every node process (secrets the config reads with `{ "env": … }`). */
  nodeEnv?: Record<string, string>;
}

export class LocalCluster {
  readonly nodes = new Map<string, NodeProc>();
  /** Every node's output over all its incarnations (see keepLogs). */
  private readonly history = new Map<string, string[]>();
  readonly events: ClusterEvent[] = [];
  private readonly proxies = new Map<string, TcpProxy>();
  private readonly nodeConfigFiles = new Map<string, string>();
  private skew: Record<string, string> = {};
  private cliPath = CLI;
  private nodeEnv: Record<string, string> = {};
  private nodeLaunchers = new Map<string, readonly string[]>();
  private constructor(
    readonly dir: string,
    readonly configFile: string,
    readonly config: Record<string, any>,
    readonly nats: Awaited<ReturnType<typeof startTempNats>>,
    readonly nc: NatsConnection,
    readonly runtime: "node" | "deno",
  ) {}

  static async start(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    // Checked before anything starts: a failed start must leave no server behind.
    if (Object.keys(opts.skew ?? {}).length > 0 && !existsSync(LIBFAKETIME)) {
      throw new Error(`clock-skewed nodes need ${LIBFAKETIME}: install it (Debian/Ubuntu: apt-get install faketime)`);
    }
    const nats = opts.natsCluster ? await clusterAsTempNats(opts.natsCluster, opts.natsConfig) : await startTempNats(opts.natsConfig === undefined ? {} : { config: opts.natsConfig });
    const dir = await mkdtemp(join(tmpdir(), "herald-cluster-"));
    const n = opts.nodes ?? 4;
    const actors = { ingest: 0, collector: 1, subqueue: 0, processor: 1, pusher: 0, ...opts.actors };
    const config = {
      cluster: "test",
      nats: { servers: nats.url.split(","), ...(opts.natsCluster ? { replicas: opts.natsCluster.replicas } : {}) },
      heartbeat: { intervalMs: opts.intervalMs ?? 200, timeoutMs: opts.timeoutMs ?? 1000 },
      master: { preset: "n1" },
      supervisor: { pingIntervalMs: 500, pingTimeoutMs: 2000, drainTimeoutMs: 3000 },
      nodes: await Promise.all(
        Array.from({ length: n }, async (_, i) => ({
          name: `n${i + 1}`,
          actors,
          ...(opts.http ? { http: { port: await freePort() } } : {}),
          ...opts.nodeExtra?.(i),
        })),
      ),
      faultInjection: opts.faultInjection ?? true,
      ...opts.extra,
    };
    const configFile = join(dir, "cluster.config.json");
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const nc = await connect({ servers: nats.url.split(","), ...opts.harness });
    const cluster = new LocalCluster(dir, configFile, config, nats, nc, opts.runtime ?? "node");
    let seq = 0;
    nc.subscribe("herald.events", {
      callback: (err, msg) => {
        if (err) return;
        const receivedAt = performance.now();
        cluster.events.push({ ...decode<Omit<ClusterEvent, "seq" | "receivedAt">>(msg.data), seq: seq++, receivedAt });
      },
    });
    await nc.flush();
    cluster.skew = opts.skew ?? {};
    cluster.cliPath = opts.cli ?? CLI;
    cluster.nodeEnv = opts.nodeEnv ?? {};
    for (const name of opts.proxied ?? []) {
      const proxy = await startTcpProxy({ host: "127.0.0.1", port: nats.port });
      cluster.proxies.set(name, proxy);
      const file = join(dir, `${name}.config.json`);
      const own = { ...config, nats: { ...config.nats, servers: [`nats://${proxy.host}:${proxy.port}`] } };
      await writeFile(file, JSON.stringify(own, null, 2));
      cluster.nodeConfigFiles.set(name, file);
    }
    for (const { name } of config.nodes) {
      const launch = opts.nodeLaunch?.(name);
      if (launch?.launcher) cluster.nodeLaunchers.set(name, launch.launcher);
      if (!launch?.servers) continue;
      const file = join(dir, `${name}.config.json`);
      await writeFile(file, JSON.stringify({ ...config, nats: { ...config.nats, servers: launch.servers } }, null, 2));
      cluster.nodeConfigFiles.set(name, file);
    }
    return cluster;
  }

  /** The TCP proxy between a `proxied` node and the nats-server. */
  proxy(name: string): TcpProxy {
    const proxy = this.proxies.get(name);
    if (!proxy) throw new Error(`node ${name} is not proxied (LocalClusterOptions.proxied)`);
    return proxy;
  }

  /** Starts `herald start --node NAME` as a child process. */
  startNode(name: string): NodeProc {
    const args = [this.cliPath, "start", "-c", this.nodeConfigFiles.get(name) ?? this.configFile, "--node", name];
    // HERALD_PROF_DIR: every thread of every node writes a CPU profile there (bench/profile.ts sums them up).
    const prof = process.env.HERALD_PROF_DIR ? ["--cpu-prof", "--cpu-prof-dir", process.env.HERALD_PROF_DIR] : [];
    const [bin, binArgs] = this.runtime === "deno" ? [DENO, ["run", "-A", ...args]] : [process.execPath, [...NODE_HEAP_FLAGS, ...prof, ...args]];
    const launcher = this.nodeLaunchers.get(name) ?? [];
    const [cmd, argv] = launcher.length === 0 ? [bin, binArgs] : [launcher[0]!, [...launcher.slice(1), bin, ...binArgs]];
    const skew = this.skew[name];
    const proc = spawn(cmd, argv, {
      // The launcher's pipe: a node of a test run that dies (killed, timed out) drains and exits
      // instead of running on, orphaned.
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        HERALD_LOG: process.env.HERALD_LOG ?? "info",
        [LAUNCHER_PIPE_ENV]: "stdin",
        ...this.nodeEnv,
        // Wall clock off by `skew` (libfaketime: "-5s" → FAKETIME="-5"), monotonic clock untouched.
        ...(skew === undefined ? {} : { LD_PRELOAD: LIBFAKETIME, FAKETIME: skew.replace(/s$/, ""), FAKETIME_DONT_FAKE_MONOTONIC: "1" }),
      },
    });
    const output: string[] = [];
    const history = this.history.get(name) ?? [];
    this.history.set(name, history);
    if (history.length > 0) history.push(`--- ${name} started again ---\n`);
    const keep = (d: unknown) => {
      output.push(String(d));
      history.push(String(d));
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      proc.on("exit", (code, signal) => r({ code, signal })),
    );
    const node = { name, proc, output, exited };
    this.nodes.set(name, node);
    return node;
  }

  startAll(): NodeProc[] {
    return (this.config.nodes as { name: string }[]).map((n) => this.startNode(n.name));
  }

  async kill(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    node.proc.kill(signal);
    await node.exited;
  }

  /** Status as `herald status --json` computes it, gathered in-process for fast polling. */
  async status(): Promise<ClusterStatus> {
    return gatherStatus(this.nc, {
      cluster: this.config.cluster,
      subjectPrefix: "herald",
      nodes: this.config.nodes,
      heartbeat: this.config.heartbeat,
      collectors: this.config.collectors ?? [],
    });
  }

  /** Every supervisor's raw answer on herald.status (its own view of the others included). */
  reports(): Promise<NodeReport[]> {
    return collectReports(this.nc, "herald.status");
  }

  /** Waits until `pred(status)` holds; returns that status. */
  async waitStatus(what: string, pred: (s: ClusterStatus) => boolean, timeoutMs = 15_000): Promise<ClusterStatus> {
    const found = await waitFor(
      async () => {
        const s = await this.status();
        return pred(s) ? s : undefined;
      },
      { timeoutMs, intervalMs: 50, what },
    );
    return found!;
  }

  /** Runs the real CLI. */
  cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCli([...args], { cwd: this.dir, env });
  }

  nodeOutput(name: string): string {
    return this.nodes.get(name)?.output.join("") ?? "";
  }

  async stop(): Promise<void> {
    for (const node of this.nodes.values()) {
      // A profiled node must exit on its own to write its profiles.
      if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill(process.env.HERALD_PROF_DIR ? "SIGTERM" : "SIGKILL");
    }
    await Promise.all([...this.nodes.values()].map((n) => n.exited));
    await this.nc.close().catch(() => undefined);
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    await this.nats.stop();
    await this.keepLogs();
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * `HERALD_TEST_LOGS=DIR`: every node's output, all its incarnations, is kept in
   * DIR/<cluster dir>/<node>.log when the cluster stops, to read after a failed run.
   */
  private async keepLogs(): Promise<void> {
    const root = process.env.HERALD_TEST_LOGS;
    if (!root) return;
    const dir = join(root, basename(this.dir));
    await mkdir(dir, { recursive: true });
    for (const [name, lines] of this.history) await writeFile(join(dir, `${name}.log`), lines.join(""));
  }
}

/** A nats-server cluster seen through the one-server handle: `url` lists every server, `server` is the first. */
async function clusterAsTempNats(opts: { size: number; hosts?: readonly NatsHost[] }, config: string | undefined): Promise<TempNats> {
  const cluster = await startTempNatsCluster({ size: opts.size, ...(opts.hosts ? { hosts: opts.hosts } : {}), ...(config === undefined ? {} : { config }) });
  const server = cluster.servers[0]!;
  return { url: cluster.urls.join(","), port: server.port, storeDir: "", server, servers: cluster.servers, stop: cluster.stop };
}

export function runCli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`herald ${args.join(" ")} did not finish in ${opts.timeoutMs ?? 30_000} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}
