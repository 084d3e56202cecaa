/**
 * Reading `cluster.config.json`: file → JSON → validated config with defaults applied and relative
 * paths resolved against the file's directory. Every failure is a ConfigError that says what to do.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError, humanMessage, toIssues } from "./errors.js";
import { configSchema, type HeraldConfig, type SingleTopicConfig, type TopicConfig } from "./schema.js";
import { isFanout } from "./topics.js";

/** The file every command reads when no `-c FILE` is given. */
export const DEFAULT_CONFIG_FILE = "cluster.config.json";

/** A config together with where it came from. */
export interface LoadedConfig {
  config: HeraldConfig;
  /** Absolute path of the config file. */
  file: string;
  /** Absolute directory of the config file; relative paths in the config are resolved against it. */
  dir: string;
}

/**
 * Reads, parses and validates a config file.
 * @throws ConfigError when the file is missing or unreadable, is not JSON, or does not validate
 *   (then `issues` lists every problem).
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const input = parseJson(await readText(file, absolute), file, absolute);
  return { config: validate(input, dir, { shown: file, absolute }), file: absolute, dir };
}

/**
 * Validates an already parsed config (pure apart from path resolution; for tests and callers that
 * build configs in memory). Relative paths are resolved against `baseDir`.
 * @throws ConfigError listing every problem.
 */
export function parseConfig(input: unknown, baseDir: string): HeraldConfig {
  return validate(input, baseDir, undefined);
}

function validate(input: unknown, baseDir: string, file: { shown: string; absolute: string } | undefined): HeraldConfig {
  const result = configSchema.safeParse(input, { error: humanMessage });
  if (!result.success) throw ConfigError.fromIssues(toIssues(result.error.issues), file);
  const config = result.data;
  const at = (file: string | undefined) => (file === undefined ? undefined : path.resolve(baseDir, file));
  const { auth, tls } = config.nats;
  // An email topic's CA file, like every path, is relative to the config file.
  const topics = Object.fromEntries(
    Object.entries(config.topics).map(([name, t]) => [name, topicFiles(t, at)]),
  );
  return {
    ...config,
    topics,
    nats: {
      ...config.nats,
      storeDir: path.resolve(baseDir, config.nats.storeDir),
      ...(auth === undefined ? {} : { auth: { ...auth, credsFile: at(auth.credsFile), nkeySeedFile: at(auth.nkeySeedFile) } }),
      ...(tls === undefined ? {} : { tls: { caFile: at(tls.caFile), certFile: at(tls.certFile), keyFile: at(tls.keyFile) } }),
    },
  };
}

async function readText(shown: string, absolute: string): Promise<string> {
  try {
    return await readFile(absolute, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? `not found; pass -c FILE or create ${DEFAULT_CONFIG_FILE}`
        : code === "EACCES"
          ? "permission denied"
          : code === "EISDIR"
            ? "it is a directory; pass -c FILE naming the config file"
            : (err as Error).message;
    throw new ConfigError(`cannot read config file ${shown}: ${reason}`, { cause: err, file: absolute });
  }
}

function parseJson(text: string, shown: string, absolute: string): unknown {
  const json = text.replace(/^\uFEFF/, "");
  if (json.trim() === "") throw new ConfigError(`cannot parse config file ${shown}: the file is empty`, { file: absolute });
  try {
    return JSON.parse(json);
  } catch (err) {
    // V8's wording, without its position and echo of the text (the line and column replace them).
    const reason = (err as Error).message
      .replace(/ (in JSON )?at position \d+.*$/s, "")
      .replace(/^(Unexpected token '.*?'), .*$/s, "$1");
    const where = lineColumn(json, jsonErrorOffset(json));
    const hint = "it must be plain JSON: no comments, no trailing commas";
    throw new ConfigError(`cannot parse config file ${shown}: ${where}: ${reason} (${hint})`, { cause: err, file: absolute });
  }
}

/**
 * Offset of the character that makes `json` invalid. V8 reports a position for some errors only,
 * so find it directly: the longest prefix that is still valid JSON or merely unfinished (its only
 * error is at its very end). Viable prefixes are downward closed, so a binary search finds it.
 */
function jsonErrorOffset(json: string): number {
  const viable = (length: number): boolean => {
    try {
      JSON.parse(json.slice(0, length));
      return true;
    } catch (err) {
      const message = (err as Error).message;
      return message.startsWith("Unexpected end") || new RegExp(`position ${length}\\b`).test(message);
    }
  };
  let [lo, hi] = [0, json.length]; // viable(lo) holds; find the largest viable length
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (viable(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** `line 3, column 5` (1-based) of an offset in a text. */
function lineColumn(text: string, offset: number): string {
  const lines = text.slice(0, offset).split("\n");
  return `line ${lines.length}, column ${lines[lines.length - 1]!.length + 1}`;
}

type At = (file: string | undefined) => string | undefined;

/** A topic with the files it names (CA, keys) resolved against the config file's directory. */
function topicFiles(t: TopicConfig, at: At): TopicConfig {
  return isFanout(t) ? { ...t, channels: t.channels.map((c) => channelFiles(c, at)) } : channelFiles(t, at);
}

/** One channel's settings (a single-channel topic, or an entry of a fan-out topic) with its files resolved. */
function channelFiles<T extends SingleTopicConfig>(channel: T, at: At): T {
  const t: SingleTopicConfig = channel;
  switch (t.channel) {
    case "email":
      return (t.smtp.caFile === undefined ? t : { ...t, smtp: { ...t.smtp, caFile: at(t.smtp.caFile) } }) as T;
    case "webpush":
      return (t.caFile === undefined ? t : { ...t, caFile: at(t.caFile) }) as T;
    case "apns":
      return { ...t, keyFile: at(t.keyFile)!, ...(t.caFile === undefined ? {} : { caFile: at(t.caFile) }) } as T;
    case "fcm":
      return { ...t, serviceAccountFile: at(t.serviceAccountFile)!, ...(t.caFile === undefined ? {} : { caFile: at(t.caFile) }) } as T;
    default:
      return channel;
  }
}
