/** Reading what the user hands a command: a JSON object, inline or from a file, and a --limit. */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { errorText, HeraldError } from "../errors.js";

/**
 * The JSON object given inline (`flag`, e.g. `--data`) or as a file (`--file`); neither is `{}`.
 * Shared by the commands that take a JSON object from the user.
 * @throws HeraldError USAGE when both are given or the inline text is not a JSON object;
 *   FILE when the file cannot be read or does not hold a JSON object.
 */
export async function readJsonObject(flag: string, inline: string | undefined, file: string | undefined): Promise<Record<string, unknown>> {
  if (inline !== undefined && file !== undefined) throw new HeraldError("USAGE", `give ${flag} or --file, not both`);
  if (inline !== undefined) {
    const value = parseObject(inline);
    if (typeof value === "string") throw new HeraldError("USAGE", `${flag} must be a JSON object: ${value}`);
    return value;
  }
  if (file === undefined) return {};
  let text: string;
  try {
    text = await readFile(resolve(file), "utf8");
  } catch (err) {
    throw new HeraldError("FILE", `cannot read --file ${file}: ${errorText(err)}`);
  }
  const value = parseObject(text);
  if (typeof value === "string") throw new HeraldError("FILE", `--file ${file} must hold a JSON object: ${value}`);
  return value;
}

/** The parsed object, or why the text is not one. */
function parseObject(text: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return errorText(err);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return `got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`;
  }
  return value as Record<string, unknown>;
}

/** `--limit N`: an integer ≥ 1, or `dflt` when not given; a USAGE error otherwise. */
export function parseLimit(text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1) throw new HeraldError("USAGE", `--limit must be an integer ≥ 1, got "${text}"`);
  return limit;
}
