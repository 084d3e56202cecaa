/**
 * The launcher's watchdog (a process of its own): carries out the launcher's shutdown when the
 * launcher dies without doing it — SIGKILL, a crash — so that nothing it started outlives it.
 *
 * Its stdin is a pipe from the launcher, which writes one line per process it starts, as soon as
 * it has started it: `node <pid>` or `server <pid>`. When the pipe ends (the launcher exited,
 * however it exited) the watchdog does what the launcher's own shutdown does, in the same order:
 * it waits for the nodes, which drain on their own when their launcher pipe ends, SIGKILLs any
 * still running after the grace given as its argument, then stops the nats-server (SIGTERM, and
 * SIGKILL after 5 s) once no node needs it any more, and exits. After a clean shutdown of the
 * launcher, every process it names is already gone and it exits at once.
 *
 * A process is recognised by its pid and start time (process-info.ts), so a pid reused by some
 * other process is left alone.
 *
 * Usage (internal, see watchdog-link.ts): node watchdog.js NODE_GRACE_MS
 */
import { createInterface } from "node:readline";
import { createLogger } from "../log.js";
import { isSameProcess, probeProcess } from "./process-info.js";

interface Watched {
  kind: "node" | "server";
  pid: number;
  startedAt: string | undefined;
}

const SERVER_GRACE_MS = 5_000;
const POLL_MS = 100;

// Its stderr is the launcher's; should that be a pipe whose reader died with the launcher, a
// failed write must not end the watchdog before it has done its work.
process.stderr.on("error", () => undefined);
const log = createLogger("watchdog");
const nodeGraceMs = Number(process.argv[2]) || 15_000;
const watched: Watched[] = [];

// It runs in its own process group, out of a terminal's reach; a hangup or Ctrl-C sent to it
// anyway must not end it before the launcher's own shutdown has run. (SIGTERM does end it: that
// is how a process manager stops everything of a service at once.)
for (const sig of ["SIGINT", "SIGHUP"] as const) process.on(sig, () => undefined);

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [kind, pidText] = line.trim().split(/\s+/);
  const pid = Number(pidText);
  if ((kind !== "node" && kind !== "server") || !Number.isInteger(pid)) return;
  const probe = probeProcess(pid);
  if (probe.alive) watched.push({ kind, pid, startedAt: probe.startedAt });
});
let shuttingDown = false;
const onEnd = () => {
  if (shuttingDown) return;
  shuttingDown = true;
  void shutdown().finally(() => process.exit(0));
};
lines.once("close", onEnd);
process.stdin.once("error", onEnd);

function alive(kind: Watched["kind"]): Watched[] {
  return watched.filter((w) => w.kind === kind && isSameProcess(w.pid, w.startedAt));
}

async function shutdown(): Promise<void> {
  const nodes = alive("node");
  if (nodes.length === 0 && alive("server").length === 0) return;
  log.warn(`launcher gone: waiting for ${nodes.length} node(s) to drain, then stopping the nats-server`, {
    nodes: nodes.map((n) => n.pid).join(","),
  });
  await until(() => alive("node").length === 0, nodeGraceMs);
  for (const n of alive("node")) {
    log.warn(`node pid ${n.pid} did not stop within ${nodeGraceMs} ms: killing it`);
    signal(n.pid, "SIGKILL");
  }
  for (const s of alive("server")) signal(s.pid, "SIGTERM");
  await until(() => alive("server").length === 0, SERVER_GRACE_MS);
  for (const s of alive("server")) {
    log.warn(`nats-server pid ${s.pid} did not stop within ${SERVER_GRACE_MS} ms: killing it`);
    signal(s.pid, "SIGKILL");
  }
}

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, POLL_MS));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone meanwhile.
  }
}
