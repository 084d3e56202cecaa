/**
 * The launcher's side of its watchdog (watchdog.ts): starts it, tells it of every process the
 * launcher starts, and lets it go when the launcher has stopped them all itself.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.js";

const WATCHDOG_SCRIPT = fileURLToPath(new URL("./watchdog.js", import.meta.url));
const CLOSE_WAIT_MS = 2_000;

export interface WatchdogOptions {
  /** How long, in ms, the watchdog waits for the nodes to drain before it kills them. */
  nodeGraceMs: number;
  /** How to run a script of ours on this runtime (platform's `scriptCommand`). */
  command: (script: string, args: readonly string[]) => [string, string[]];
  log: Logger;
}

export class Watchdog {
  private closing = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    log: Logger,
  ) {
    let warned = false;
    const lost = (why: string) => {
      if (this.closing || warned) return;
      warned = true;
      log.warn(`the watchdog ${why}: if this launcher is killed, its nodes still stop but its nats-server may not`);
    };
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        lost(`exited (${signal ?? `code ${code}`})`);
        resolve();
      });
      child.once("error", (err) => {
        lost(`could not be started (${err.message})`);
        if (child.pid === undefined) resolve();
      });
    });
    child.stdin?.on("error", () => undefined);
  }

  /** Starts the watchdog, in its own process group so that a terminal's signals do not reach it. */
  static start(opts: WatchdogOptions): Watchdog {
    const [cmd, args] = opts.command(WATCHDOG_SCRIPT, [String(opts.nodeGraceMs)]);
    const child = spawn(cmd, args, { stdio: ["pipe", "ignore", "inherit"], detached: true });
    return new Watchdog(child, opts.log);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Call as soon as the process is spawned: from then on the watchdog stops it if this process dies. */
  watch(kind: "node" | "server", pid: number): void {
    if (this.child.stdin?.writable) this.child.stdin.write(`${kind} ${pid}\n`);
  }

  /** Ends the pipe once everything watched has been stopped; the watchdog then exits. */
  async close(): Promise<void> {
    this.closing = true;
    this.child.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }
}
