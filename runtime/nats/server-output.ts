/**
 * What a nats-server child printed, for the errors that quote it: read from its pipes as it
 * comes, or, when it writes to a log file of its own, from the end of that file.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readSync, statSync } from "node:fs";

/** Lines of output an error quotes. */
export const OUTPUT_TAIL_LINES = 30;
const FILE_TAIL_BYTES = 65_536;

/** Keeps the last N lines of a process's output for error messages. */
export class OutputTail {
  private readonly kept: string[] = [];
  private partial = "";

  constructor(private readonly max: number) {}

  push(text: string): void {
    const parts = (this.partial + text).split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    this.kept.push(...parts);
    if (this.kept.length > this.max) this.kept.splice(0, this.kept.length - this.max);
  }

  lines(): string[] {
    const all = this.partial === "" ? [...this.kept] : [...this.kept, this.partial];
    return all.slice(-this.max);
  }
}

/** Reads the output pipes, if any, to the end (an unread pipe would block the server once full). */
export function collectOutput(child: ChildProcess, tail: OutputTail, onSpawnError: (err: Error) => void): Promise<number | null> {
  for (const stream of [child.stdout, child.stderr]) stream?.on("data", (chunk: Buffer) => tail.push(chunk.toString("utf8")));
  return new Promise((resolve) => {
    let finished = false;
    const finish = (code: number | null) => {
      if (finished) return;
      finished = true;
      resolve(code);
    };
    child.once("error", (err) => {
      onSpawnError(err);
      if (child.pid === undefined) finish(null);
    });
    child.once("close", (code) => finish(code));
  });
}

/** Bytes in `file` now; 0 when there is no such file. */
export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last lines written to `file` since it was `from` bytes long (at most its last 64 KiB). */
export function fileTail(file: string, from: number): string[] {
  const tail = new OutputTail(OUTPUT_TAIL_LINES);
  try {
    const size = fileSize(file);
    const start = Math.max(from, size - FILE_TAIL_BYTES);
    const buf = Buffer.alloc(Math.max(0, size - start));
    const fd = openSync(file, "r");
    try {
      readSync(fd, buf, 0, buf.length, start);
    } finally {
      closeSync(fd);
    }
    tail.push(buf.toString("utf8"));
  } catch {
    // No log to quote.
  }
  return tail.lines();
}
