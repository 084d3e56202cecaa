/**
 * Config and rules errors, and the translation of zod's issues into messages an operator can act
 * on: every message names the path (`nodes[2].actors.processor`) and the reason
 * (`must be an integer ≥ 0`). This module imports nothing of Herald's, so both the config and the
 * rules schema can use it.
 */
import * as z from "zod";
import { HeraldError } from "../errors.js";

/** One problem found in a config or a rule: where (`topics.demo.url`) and what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** The config file cannot be read, is not JSON, or does not validate. */
export class ConfigError extends HeraldError {
  override readonly name = "ConfigError";
  /** Every problem found; empty when the file could not be read or parsed at all. */
  readonly issues: ConfigIssue[];
  /** Absolute path of the config file, when the config came from a file. */
  readonly file: string | undefined;

  constructor(message: string, options?: ErrorOptions & { issues?: ConfigIssue[]; file?: string }) {
    super("CONFIG", message, options?.cause === undefined ? {} : { cause: options.cause });
    this.issues = options?.issues ?? [];
    this.file = options?.file;
  }

  /**
   * The error for a config that does not validate: one line per issue, then a hint naming the
   * file (`shown`: as the user named it; `absolute`: kept in `error.file`).
   */
  static fromIssues(issues: ConfigIssue[], file?: { shown: string; absolute: string }): ConfigError {
    const where = file ? ` ${file.shown}` : "";
    const count = issues.length === 1 ? "1 problem" : `${issues.length} problems`;
    const hint = file
      ? `fix ${file.shown} and try again (cluster.config.schema.json lists every key)`
      : "fix the config and try again (cluster.config.schema.json lists every key)";
    const message = [`invalid cluster config${where} (${count}):`, ...issues.map(formatIssue), hint];
    return new ConfigError(message.join("\n"), {
      issues,
      ...(file ? { file: file.absolute } : {}),
    });
  }
}

/** A retrieval rule (from the config or `herald rules set`) is invalid; the old rule stays. */
export class RulesError extends HeraldError {
  override readonly name = "RulesError";
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], options?: ErrorOptions) {
    const lines = issues.map(formatIssue);
    super("RULES", lines.length === 1 ? `invalid rules: ${lines[0]!.trim()}` : ["invalid rules:", ...lines].join("\n"), options ?? {});
    this.issues = issues;
  }
}

function formatIssue(issue: ConfigIssue): string {
  return `  ${issue.path}: ${issue.message}`;
}

/**
 * `["nodes", 2, "actors", "processor"]` → `nodes[2].actors.processor`, under an optional prefix.
 * Keys that are not plain names are quoted: `headers["x y"]`. The root is shown as `(root)`.
 */
export function formatPath(path: readonly PropertyKey[], prefix = ""): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][\w$-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || "(root)";
}

/** Zod's issues, with messages already produced by {@link humanMessage}, as Herald issues. */
export function toIssues(issues: readonly z.core.$ZodIssue[], prefix = ""): ConfigIssue[] {
  return issues.map((issue) => ({ path: formatPath(issue.path, prefix), message: issue.message }));
}

/**
 * Zod error map (`schema.safeParse(x, { error: humanMessage })`) giving short, plain reasons.
 * Messages set on a schema itself (`{ error: "…" }`) take precedence over this.
 */
export function humanMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return mustBe(article(issue.expected), issue.input);
    case "unrecognized_keys":
      return unknownKeys(issue.keys, issue.inst);
    case "invalid_value":
      return mustBe(oneOf(issue.values), issue.input);
    case "invalid_union":
      if (issue.discriminator !== undefined && Array.isArray(issue.options)) {
        // The issue sits at the discriminator's path but carries the whole object as input.
        const input = issue.input as Record<string, unknown> | undefined;
        const value = typeof input === "object" && input !== null ? input[issue.discriminator] : input;
        return mustBe(oneOf(issue.options as unknown[]), value);
      }
      return "does not match any allowed form";
    case "too_small":
      return tooSmall(issue.origin, Number(issue.minimum), issue.inclusive !== false);
    case "too_big":
      return tooBig(issue.origin, Number(issue.maximum), issue.inclusive !== false);
    case "invalid_format":
      return issue.format === "regex" && issue.pattern
        ? `must match ${issue.pattern} (got ${describe(issue.input)})`
        : `must be a valid ${issue.format} (got ${describe(issue.input)})`;
    case "invalid_key":
      return `invalid name: ${issue.issues.map((i) => i.message).join("; ")}`;
    case "invalid_element":
      return `invalid entry: ${issue.issues.map((i) => i.message).join("; ")}`;
    case "not_multiple_of":
      return `must be a multiple of ${issue.divisor}`;
    case "custom":
      return issue.message ?? "is invalid";
    default:
      return "is invalid";
  }
}

/**
 * `required: must be X` for a missing value, else `must be X (got …)`: the reason for a value
 * that is absent or not what `wanted` describes.
 */
export function mustBe(wanted: string, input: unknown): string {
  return input === undefined ? `required: must be ${wanted}` : `must be ${wanted} (got ${describe(input)})`;
}

function article(expected: string): string {
  const names: Record<string, string> = {
    int: "an integer",
    object: "an object",
    array: "an array",
    record: "an object",
    undefined: "absent",
  };
  return names[expected] ?? `a ${expected}`;
}

function tooSmall(origin: string, min: number, inclusive: boolean): string {
  if ((origin === "array" || origin === "set") && min <= 1) return "must not be empty";
  if (origin === "array" || origin === "set") return `must have at least ${min} entries`;
  if (origin === "string" && min <= 1) return "must not be empty";
  if (origin === "string") return `must be at least ${min} characters`;
  return `must be ${inclusive ? "≥" : ">"} ${min}`;
}

function tooBig(origin: string, max: number, inclusive: boolean): string {
  if (origin === "array" || origin === "set") return `must have at most ${max} entries`;
  if (origin === "string") return `must be at most ${max} characters`;
  return `must be ${inclusive ? "≤" : "<"} ${max}`;
}

function oneOf(values: readonly unknown[]): string {
  const listed = values.map((v) => JSON.stringify(v)).join(", ");
  return values.length === 1 ? listed : `one of ${listed}`;
}

/**
 * An integer in `[min, max]` whose every failure reads `must be an integer ≥ 0 (got -1)`, and whose
 * JSON Schema says `"type": "integer"` with the bounds. (zod's own `z.int()` aborts on a fraction,
 * which would hide the cross-field checks; one refinement keeps every issue reported.)
 */
export function integer(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  const bounded = { min: min !== Number.MIN_SAFE_INTEGER, max: max !== Number.MAX_SAFE_INTEGER };
  const range = bounded.min && bounded.max ? ` from ${min} to ${max}` : bounded.min ? ` ≥ ${min}` : "";
  const reason = (input: unknown): string => {
    if (typeof input !== "number") return mustBe(`an integer${range}`, input);
    if (Number.isInteger(input) && input < min) return `must be an integer ≥ ${min} (got ${input})`;
    if (Number.isInteger(input) && input > max) return `must be an integer ≤ ${max} (got ${input})`;
    return `must be an integer${range} (got ${input})`;
  };
  return z
    .number({ error: (issue) => reason(issue.input) })
    .refine((n) => Number.isInteger(n) && n >= min && n <= max, { error: (issue) => reason(issue.input) })
    .meta({ type: "integer", ...(bounded.min ? { minimum: min } : {}), ...(bounded.max ? { maximum: max } : {}) });
}

/** A short rendering of a bad value for a message: `"fifoo"`, `1.5`, `an array`. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}…` : JSON.stringify(value);
  return String(value);
}

/** `unknown key "procesor" (did you mean "processor"?)` — typos are the usual cause. */
function unknownKeys(keys: string[], inst: unknown): string {
  const known = knownKeys(inst);
  const parts = keys.map((key) => {
    const near = known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
    return near ? `"${key}" (did you mean "${near}"?)` : `"${key}"`;
  });
  return `unknown key${keys.length === 1 ? "" : "s"} ${parts.join(", ")}`;
}

function knownKeys(inst: unknown): string[] {
  const shape = (inst as { shape?: unknown } | undefined)?.shape;
  return shape && typeof shape === "object" ? Object.keys(shape) : [];
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
