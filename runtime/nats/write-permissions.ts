/**
 * Writes deploy/nats/herald-permissions.conf from runtime/nats/permissions.ts, so the shipped
 * server config and the code cannot drift: `npm run permissions`. A test checks the committed file.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "../platform/repo.js";
import { shippedPermissionsConfig } from "./permissions.js";

/** Where the shipped server config lives, relative to the repo root. */
export const PERMISSIONS_FILE = "deploy/nats/herald-permissions.conf";

async function main(): Promise<void> {
  const target = path.resolve(process.argv[2] ?? path.join(repoRoot(import.meta.url), PERMISSIONS_FILE));
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, shippedPermissionsConfig());
  console.log(`wrote ${target}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  });
}
