/**
 * The launcher (`herald start` without --node) and what it starts, living and ending as one, as a
 * process manager or a terminal sees them: a hard kill of the launcher leaves nothing running and
 * the next start comes up whole, a hangup drains, a dead embedded server is restarted, and a
 * second launcher or server on the same config or store dir is refused. Real processes throughout:
 * the compiled CLI, its nodes, its watchdog and a real nats-server.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { launcherLockFile } from "../runtime/cli/launcher.js";
import { isSameProcess, probeProcess } from "../runtime/lifecycle/index.js";
import { bindBucket } from "../runtime/nats/buckets.js";
import { findNatsServer, freePort } from "../runtime/nats/server.js";
import { CLI, runCli } from "./helpers/cluster.js";
import { startTestNats, waitFor } from "./helpers/nats.js";
import { MASTER_KEY, nodeKey } from "../runtime/names.js";

interface Started {
  pid: number;
  startedAt: string | undefined;
}

/** Every process a test started, directly or through a launcher: ended (SIGKILL) after each test. */
const started: Started[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const p of started.splice(0)) {
    if (isSameProcess(p.pid, p.startedAt)) process.kill(p.pid, "SIGKILL");
  }
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track(pid: number | undefined): void {
  if (pid === undefined || started.some((p) => p.pid === pid)) return;
  const probe = probeProcess(pid);
  if (probe.alive) started.push({ pid, startedAt: probe.startedAt });
}

interface Cluster {
  dir: string;
  file: string;
  port: number;
}

const NODES = ["n1", "n2"];

async function tempCluster(opts: { port?: number; dir?: string; name?: string } = {}): Promise<Cluster> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "herald-life-")));
  const file = join(dir, opts.name ?? "cluster.config.json");
  const port = opts.port ?? (await freePort());
  const config = {
    cluster: "life",
    nats: { embedded: true, port, storeDir: "store" },
    heartbeat: { intervalMs: 200, timeoutMs: 1000 },
    master: { preset: "n1" },
    supervisor: { drainTimeoutMs: 3000 },
    nodes: NODES.map((name) => ({ name, actors: { ingest: 0, collector: 0, subqueue: 0, processor: 1, pusher: 0 } })),
  };
  await writeFile(file, JSON.stringify(config, null, 2));
  if (opts.dir === undefined) cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // A launcher killed by a test leaves its (stale) lock in the temp dir.
  cleanups.push(() => rm(launcherLockFile(file), { force: true }));
  return { dir, file, port };
}

interface Launcher {
  proc: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `herald start -c FILE` in a session of its own, as from a terminal (so it can be hung up). */
function launch(cluster: Cluster, env: Record<string, string> = {}): Launcher {
  const proc = spawn(process.execPath, [CLI, "start", "-c", cluster.file], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, HERALD_LOG: "info", ...env },
  });
  track(proc.pid);
  let output = "";
  proc.stdout!.on("data", (d) => (output += d));
  proc.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on("exit", (code, signal) => r({ code, signal })));
  // What it starts is ended after the test too, even once the launcher itself is gone.
  const watch = setInterval(() => children(proc.pid!).forEach((c) => track(c.pid)), 100);
  void exited.then(() => clearInterval(watch));
  return { proc, pid: proc.pid!, output: () => output, exited };
}

/** The launcher's child processes (its nodes, watchdog and nats-server), from `ps`. */
function children(pid: number): { pid: number; command: string }[] {
  let out: string;
  try {
    out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when there are none.
  }
  return out
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [p, command = ""] = l.trim().split(/\s+/);
      return { pid: Number(p), command };
    });
}

function gone(pids: number[]): boolean {
  return pids.every((pid) => !probeProcess(pid).alive);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

interface StatusJson {
  master: { node: string | null; epoch: number } | null;
  nodes: { name: string; state: string; pid: number }[];
}

/**
 * Until `herald status --json` shows every node alive and a master. (Which node: the preset one
 * creates the lease, but a lease released by a drained master goes to whichever node comes first.)
 */
async function waitWhole(cluster: Cluster, what = "every node alive and a master (herald status --json)"): Promise<StatusJson> {
  const status = await waitFor(
    async () => {
      const r = await runCli(["status", "-c", cluster.file, "--json"], { timeoutMs: 15_000 });
      if (r.code !== 0) return undefined;
      const s = JSON.parse(r.stdout) as StatusJson;
      const whole = s.nodes.length === NODES.length && s.nodes.every((n) => n.state === "alive") && typeof s.master?.node === "string";
      return whole ? s : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 200, what },
  );
  return status!;
}

/** n1's registry record and the master lease (holder and epoch) over `beats` heartbeats of n1. */
async function watchOverBeats(cluster: Cluster, beats: number): Promise<{ incarnations: Set<string>; leases: Set<string> }> {
  const nc = await connect({ servers: `nats://127.0.0.1:${cluster.port}` });
  try {
    const kv = await bindBucket(nc, "herald_registry");
    const incarnations = new Set<string>();
    const leases = new Set<string>();
    const readMarks = new Set<number>();
    await waitFor(
      async () => {
        const [rec, lease] = await Promise.all([kv.get(nodeKey("n1")), kv.get(MASTER_KEY)]);
        if (rec?.operation === "PUT") {
          const r = rec.json<{ id: string; readMark: number }>();
          incarnations.add(r.id);
          readMarks.add(r.readMark);
        }
        if (lease?.operation === "PUT") {
          const l = lease.json<{ node: string | null; epoch: number }>();
          leases.add(`${l.node}@${l.epoch}`);
        }
        return readMarks.size >= beats;
      },
      { timeoutMs: 20_000, intervalMs: 50, what: `${beats} heartbeats of n1` },
    );
    return { incarnations, leases };
  } finally {
    await nc.close();
  }
}

async function exitOf(l: Launcher, timeoutMs: number, what: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return waitFor(() => l.exited, { timeoutMs, what: `${what}; its output:\n${l.output()}` });
}

/** A NATS_SERVER_BIN: a shell script running `body`, then exec'ing the real nats-server. */
async function serverWrapper(dir: string, body: string): Promise<string> {
  const file = join(dir, "nats-server-wrapper.sh");
  await writeFile(file, `#!/bin/sh\n${body}\nexec ${findNatsServer()} "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}

describe("the launcher and what it starts", () => {
  it("killed with SIGKILL, it leaves no node and no nats-server running; the next start comes up whole", async () => {
    const cluster = await tempCluster();
    const first = launch(cluster);
    const status = await waitWhole(cluster);
    const kids = children(first.pid);
    for (const n of status.nodes) expect(kids.map((k) => k.pid)).toContain(n.pid);
    expect(kids.some((k) => k.command === "nats-server")).toBe(true);

    process.kill(first.pid, "SIGKILL");
    await first.exited;
    await waitFor(() => gone(kids.map((k) => k.pid)), {
      timeoutMs: 20_000,
      what: `every process of the killed launcher to exit (${kids.map((k) => `${k.command} ${k.pid}`).join(", ")}); output:\n${first.output()}`,
    });
    // They drained, as on SIGTERM.
    for (const name of NODES) {
      expect(first.output()).toContain(`${name} launcher gone (its pipe closed): draining`);
      expect(first.output()).toContain(`${name} node stopped`);
    }
    expect(await portOpen(cluster.port)).toBe(false);
    // After them the server, cleanly (not of a SIGPIPE into the dead launcher's pipe).
    const server = kids.find((k) => k.command === "nats-server")!;
    expect(await readFile(join(cluster.dir, "store", "nats-server.log"), "utf8")).toMatch(new RegExp(`\\[${server.pid}\\] .*Server Exiting`));

    const second = launch(cluster);
    await waitWhole(cluster, "the second launcher's cluster whole");
    const { incarnations, leases } = await watchOverBeats(cluster, 8);
    expect([...incarnations], "one incarnation of n1 writes its record").toHaveLength(1);
    expect([...leases], "the master lease stays with one holder at one epoch").toHaveLength(1);

    process.kill(second.pid, "SIGTERM");
    expect((await exitOf(second, 30_000, "the second launcher to exit")).code).toBe(0);
  });

  it("started right after a kill -9 of the previous one, it waits for what that one left running, then comes up whole", async () => {
    const cluster = await tempCluster();
    const first = launch(cluster);
    const status = await waitWhole(cluster);
    const kids = children(first.pid);
    // A node that will not drain (stopped): the killed launcher's watchdog kills it after the grace.
    const stuck = status.nodes.find((n) => n.name === "n2")!.pid;
    process.kill(stuck, "SIGSTOP");

    process.kill(first.pid, "SIGKILL");
    await first.exited;
    const second = launch(cluster);
    await waitFor(() => second.output().includes("waiting for"), { timeoutMs: 15_000, what: `the second launcher to wait; output:\n${second.output()}` });
    expect(second.output()).toMatch(new RegExp(`waiting for .*node n2 \\(pid ${stuck}\\).*, left running by a launcher that is gone, to stop`));
    await waitWhole(cluster, "the second launcher's cluster whole");
    expect(gone(kids.map((k) => k.pid))).toBe(true);
    expect(first.output()).toContain(`node pid ${stuck} did not stop within 8000 ms: killing it`);
    const { incarnations, leases } = await watchOverBeats(cluster, 8);
    expect([...incarnations]).toHaveLength(1);
    expect([...leases]).toHaveLength(1);

    process.kill(second.pid, "SIGTERM");
    expect((await exitOf(second, 30_000, "the second launcher to exit")).code).toBe(0);
  });

  it("killed while its nats-server is still starting, it leaves no server behind", async () => {
    const cluster = await tempCluster();
    const pidFile = join(cluster.dir, "server.pid");
    // A slow start: the server process exists (as this script) 3 s before it becomes nats-server.
    // Its output goes to a file of its own, as the launcher's server's does: a Go program writing
    // to the pipe of a dead parent dies of SIGPIPE, which would end it here by luck.
    const bin = await serverWrapper(cluster.dir, `echo $$ > "${pidFile}"\nexec >> "${cluster.dir}/wrapper.log" 2>&1\nsleep 3`);
    const l = launch(cluster, { NATS_SERVER_BIN: bin });
    await waitFor(() => existsSync(pidFile), { timeoutMs: 20_000, what: `the server process to start; output:\n${l.output()}` });
    const serverPid = Number((await readFile(pidFile, "utf8")).trim());
    track(serverPid);

    process.kill(l.pid, "SIGKILL");
    await waitFor(() => gone([serverPid]), { timeoutMs: 15_000, what: `the starting server (pid ${serverPid}) to exit` });
    expect(await portOpen(cluster.port)).toBe(false);
  });

  it("SIGHUP, as from a closed terminal, drains every node and exits 0", async () => {
    const cluster = await tempCluster();
    const l = launch(cluster);
    await waitWhole(cluster);
    const kids = children(l.pid);

    // A terminal hangs up its whole process group: the launcher and its nodes.
    process.kill(-l.pid, "SIGHUP");
    const end = await exitOf(l, 30_000, "the launcher to exit after SIGHUP");
    expect(end).toEqual({ code: 0, signal: null });
    expect(l.output()).toContain("launcher SIGHUP: stopping all nodes");
    for (const name of NODES) {
      expect(l.output()).toMatch(new RegExp(`${name} (SIGHUP|SIGTERM) received: draining`));
      expect(l.output()).toContain(`node ${name} exited`);
    }
    await waitFor(() => gone(kids.map((k) => k.pid)), { timeoutMs: 10_000, what: "the launcher's processes to exit" });
  });

  it("an embedded nats-server that dies is restarted and the cluster is whole again", async () => {
    const cluster = await tempCluster();
    const l = launch(cluster);
    await waitWhole(cluster);
    const server = children(l.pid).find((k) => k.command === "nats-server");
    expect(server).toBeDefined();

    process.kill(server!.pid, "SIGKILL");
    await waitFor(() => l.output().includes("embedded nats-server restarted"), {
      timeoutMs: 20_000,
      what: `the launcher to restart its server; output:\n${l.output()}`,
    });
    expect(l.output()).toContain(`embedded nats-server (pid ${server!.pid}) died (SIGKILL): restarting it`);
    const restarted = children(l.pid).find((k) => k.command === "nats-server");
    expect(restarted?.pid).not.toBe(server!.pid);
    await waitWhole(cluster, "the cluster whole again after the server's restart");

    process.kill(l.pid, "SIGTERM");
    expect((await exitOf(l, 30_000, "the launcher to exit")).code).toBe(0);
  });

  it("a server that keeps dying stops the cluster with a line saying why", async () => {
    const cluster = await tempCluster();
    const marker = join(cluster.dir, "fail");
    const bin = await serverWrapper(cluster.dir, `if [ -e "${marker}" ]; then echo "refusing to start: ${marker} exists" >&2; exit 1; fi`);
    const l = launch(cluster, { NATS_SERVER_BIN: bin });
    await waitWhole(cluster);
    const server = children(l.pid).find((k) => k.command === "nats-server");
    await writeFile(marker, "");

    process.kill(server!.pid, "SIGKILL");
    const end = await exitOf(l, 40_000, "the launcher to give up on its server");
    expect(end.code).toBe(1);
    expect(l.output()).toMatch(/embedded nats-server could not be restarted \(.*\), its 6th failure within 60 s: stopping the cluster/);
  });

  it("a second launcher of the same config is refused, naming the first", async () => {
    const cluster = await tempCluster();
    const first = launch(cluster);
    await waitWhole(cluster);

    const second = await runCli(["start", "-c", cluster.file], { timeoutMs: 20_000 });
    expect(second.code).toBe(1);
    expect(second.stderr.trim().split("\n")).toHaveLength(1);
    expect(second.stderr).toContain(`herald: the cluster of ${cluster.file} is in use by herald launcher (pid ${first.pid})`);
    expect(second.stderr).toContain(`stop it first (kill ${first.pid})`);
    await waitWhole(cluster, "the first cluster still whole");

    process.kill(first.pid, "SIGTERM");
    expect((await exitOf(first, 30_000, "the first launcher to exit")).code).toBe(0);
  });

  it("a second server on a store dir in use is refused before it opens it, naming the holder", async () => {
    const cluster = await tempCluster();
    const first = launch(cluster);
    await waitWhole(cluster);
    const server = children(first.pid).find((k) => k.command === "nats-server");
    // Another config (so another launcher) on the same store dir, on another port.
    const other = await tempCluster({ dir: cluster.dir, name: "other.config.json" });

    const second = launch(other);
    const end = await exitOf(second, 20_000, "the second launcher to be refused");
    expect(end.code).toBe(1);
    await waitFor(() => second.output().endsWith("\n"), { timeoutMs: 5000, what: "the refusal's line" });
    expect(second.output().trim()).toBe(
      `herald: the nats-server store dir ${join(cluster.dir, "store")} is in use by herald launcher (pid ${first.pid}), ` +
        `with nats-server (pid ${server!.pid}): stop it first (kill ${first.pid}), or use another store dir`,
    );
    expect(await portOpen(other.port)).toBe(false);

    process.kill(first.pid, "SIGTERM");
    expect((await exitOf(first, 30_000, "the first launcher to exit")).code).toBe(0);
  });
});

describe("a node and the launcher's pipe", () => {
  async function externalConfig(): Promise<{ file: string; url: string }> {
    const nats = await startTestNats();
    cleanups.push(() => nats.stop());
    const dir = await mkdtemp(join(tmpdir(), "herald-life-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "cluster.config.json");
    const config = {
      cluster: "life",
      nats: { servers: [nats.url] },
      heartbeat: { intervalMs: 200, timeoutMs: 1000 },
      supervisor: { drainTimeoutMs: 3000 },
      nodes: [{ name: "n1", actors: { ingest: 0, collector: 0, subqueue: 0, processor: 1, pusher: 0 } }],
    };
    await writeFile(file, JSON.stringify(config));
    return { file, url: nats.url };
  }

  function startNode(file: string, stdin: "ignore" | "pipe", env: Record<string, string> = {}) {
    const proc = spawn(process.execPath, [CLI, "start", "-c", file, "--node", "n1"], {
      stdio: [stdin, "pipe", "pipe"],
      env: { ...process.env, HERALD_LOG: "info", ...env },
    });
    track(proc.pid);
    let output = "";
    proc.stdout!.on("data", (d) => (output += d));
    proc.stderr!.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
    return { proc, output: () => output, exited };
  }

  it("a node started by hand keeps running with its stdin closed", async () => {
    const { file, url } = await externalConfig();
    const node = startNode(file, "ignore");
    await waitFor(() => node.output().includes("node started"), { timeoutMs: 20_000, what: `n1 to start; output:\n${node.output()}` });
    const nc = await connect({ servers: url });
    cleanups.push(() => nc.close());
    const kv = await bindBucket(nc, "herald_registry");
    const first = (await kv.get(nodeKey("n1")))!.json<{ readMark: number }>().readMark;
    await waitFor(async () => (await kv.get(nodeKey("n1")))!.json<{ readMark: number }>().readMark >= first + 5, {
      timeoutMs: 10_000,
      what: "five more heartbeats of n1",
    });
    expect(node.proc.exitCode).toBeNull();
    expect(node.output()).not.toContain("draining");
    node.proc.kill("SIGTERM");
    expect(await node.exited).toBe(0);
  });

  it("a node given the launcher's pipe drains and exits 0 when the pipe ends", async () => {
    const { file } = await externalConfig();
    const node = startNode(file, "pipe", { HERALD_LAUNCHER_PIPE: "stdin" });
    await waitFor(() => node.output().includes("node started"), { timeoutMs: 20_000, what: `n1 to start; output:\n${node.output()}` });
    node.proc.stdin!.end();
    const code = await waitFor(() => node.exited.then((c) => ({ c })), { timeoutMs: 15_000, what: `n1 to exit; output:\n${node.output()}` });
    expect(code.c).toBe(0);
    expect(node.output()).toContain("launcher gone (its pipe closed): draining");
    expect(node.output()).toContain("node stopped");
  });
});
