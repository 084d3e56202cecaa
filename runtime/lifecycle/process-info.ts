/**
 * Is a process still there, and is it still the same process? A pid alone cannot say: pids are
 * reused, so lock files and the watchdog also keep the process's start time, which stays the same
 * across `exec` (a wrapper script that execs nats-server keeps its identity) and differs for any
 * later process that gets the pid.
 *
 * Linux reads `/proc/<pid>/stat`; macOS and the BSDs ask `ps`; elsewhere only liveness is known
 * (`startedAt` undefined), and a live pid is taken to be the recorded process.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export type ProcessProbe = { alive: false } | { alive: true; startedAt?: string };

/** The process `pid` as the OS sees it now. An exited process not yet reaped (a zombie) is gone. */
export function probeProcess(pid: number): ProcessProbe {
  if (!Number.isInteger(pid) || pid <= 0) return { alive: false };
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return { alive: false };
  }
  const stat = readStat(pid);
  if (stat === null) return { alive: false };
  if (stat?.zombie) return { alive: false };
  return stat?.startedAt === undefined ? { alive: true } : { alive: true, startedAt: stat.startedAt };
}

/** True when `pid` is alive and, where the start time is known on both sides, started at `startedAt`. */
export function isSameProcess(pid: number, startedAt: string | undefined): boolean {
  const now = probeProcess(pid);
  if (!now.alive) return false;
  return startedAt === undefined || now.startedAt === undefined || now.startedAt === startedAt;
}

/** null: gone; undefined: nothing to read on this OS. */
function readStat(pid: number): { zombie: boolean; startedAt: string } | null | undefined {
  if (process.platform === "linux") {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return null;
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields count from the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); field 22 (starttime, clock ticks since boot) is fields[19].
    return { zombie: fields[0] === "Z", startedAt: `linux:${fields[19]}` };
  }
  if (process.platform === "darwin" || process.platform.endsWith("bsd")) {
    try {
      const out = execFileSync("ps", ["-o", "stat=,lstart=", "-p", String(pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
      if (out === "") return null;
      const [state = "", ...start] = out.split(/\s+/);
      return { zombie: state.startsWith("Z"), startedAt: `ps:${start.join(" ")}` };
    } catch {
      return null;
    }
  }
  return undefined;
}
