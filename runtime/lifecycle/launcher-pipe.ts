/**
 * The pipe between the launcher (`herald start` without `--node`) and each node it starts: the
 * node's stdin. The launcher never writes to it; the pipe ends when the launcher's process ends,
 * however it ends (SIGKILL included, since the OS closes a dead process's files), and the node
 * then drains as on SIGTERM.
 *
 * Only a node the launcher started watches its stdin, told so by {@link LAUNCHER_PIPE_ENV}: a node
 * started by hand or by a process manager has a closed or ignored stdin, which must not stop it.
 */
import type { SpawnOptions } from "node:child_process";

/** Internal: set by the launcher for its nodes ("stdin": the launcher's pipe is this process's stdin). */
export const LAUNCHER_PIPE_ENV = "HERALD_LAUNCHER_PIPE";

/** Spawn options that give a node the launcher's pipe (its stdin) and tell it so. */
export function launcherPipeSpawnOptions(env: NodeJS.ProcessEnv = process.env): SpawnOptions {
  return { stdio: ["pipe", "inherit", "inherit"], env: { ...env, [LAUNCHER_PIPE_ENV]: "stdin" } };
}

/**
 * In a node: when it was started with the launcher's pipe, calls `onGone` once that pipe ends.
 * Returns whether the pipe is watched.
 */
export function watchLauncherPipe(onGone: () => void): boolean {
  if (process.env[LAUNCHER_PIPE_ENV] !== "stdin") return false;
  // Not for anything this process starts in turn.
  delete process.env[LAUNCHER_PIPE_ENV];
  let fired = false;
  const gone = () => {
    if (fired) return;
    fired = true;
    onGone();
  };
  const stdin = process.stdin;
  stdin.on("data", () => undefined);
  stdin.once("end", gone);
  stdin.once("close", gone);
  stdin.once("error", gone);
  return true;
}
