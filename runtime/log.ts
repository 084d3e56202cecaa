/** Levels in increasing severity; `HERALD_LOG` (default "info") sets the least one printed. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const level = (env?.HERALD_LOG ?? "info") as LogLevel;
  return ORDER[level] ?? ORDER.info;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(scope: string): Logger;
}

/**
 * A line-per-event logger on stderr: `time level scope message key=value…`. Stdout is left to
 * command output (status tables, ids) so scripts can parse it.
 */
export function createLogger(scope: string): Logger {
  const min = threshold();
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    let line = `${new Date().toISOString()} ${level.padEnd(5)} ${scope} ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        line += ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`;
      }
    }
    console.error(line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (sub) => createLogger(`${scope}/${sub}`),
  };
}
