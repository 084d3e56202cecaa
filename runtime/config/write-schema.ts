/**
 * Writes `cluster.config.schema.json` (JSON Schema draft 2020-12, for editors) at the repo root
 * from the zod schema, so the two cannot drift: `npm run schema`. A test checks the committed file
 * equals {@link configJsonSchema}.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as z from "zod";
import { repoRoot } from "../platform/repo.js";
import { configSchema } from "./schema.js";

/** File name of the generated schema, at the repo root. */
export const CONFIG_SCHEMA_FILE = "cluster.config.schema.json";

/** The JSON Schema of `cluster.config.json` as users write it (defaulted keys optional). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>;
}

/** The schema file's text: two-space JSON with a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

async function main(): Promise<void> {
  const target = path.resolve(process.argv[2] ?? path.join(repoRoot(import.meta.url), CONFIG_SCHEMA_FILE));
  await writeFile(target, configJsonSchemaText());
  console.log(`wrote ${target}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  });
}
