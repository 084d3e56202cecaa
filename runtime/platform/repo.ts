/** Finding the Herald checkout a module runs from (from source under vitest and from dist/ alike). */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest directory at or above `moduleUrl` (an `import.meta.url`) holding package.json. */
export function repoRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the repo root (no package.json above ${fileURLToPath(moduleUrl)})`);
    dir = parent;
  }
  return dir;
}

let version: string | undefined;

/** Herald's version, from its package.json. */
export function heraldVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(repoRoot(import.meta.url), "package.json"), "utf8")) as { version: string }).version;
  return version;
}
