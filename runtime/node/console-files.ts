/**
 * The web console's files, served by every node at `/` and `/console/…`: our own page, script and
 * styles (`console/` in the package) and the three small libraries it uses, straight from their
 * packages (Preact and htm for the views, uPlot for the charts) — no build step.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { repoRoot } from "../platform/repo.js";

export interface ConsoleFile {
  type: string;
  body: Buffer;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

let files: Map<string, ConsoleFile> | undefined;

/** The console's files by URL path (`/`, `/console/app.js`, `/console/vendor/preact.mjs`, …), read once. */
export function consoleFiles(): Map<string, ConsoleFile> {
  if (files) return files;
  const require = createRequire(import.meta.url);
  const pkg = (name: string) => path.dirname(require.resolve(`${name}/package.json`));
  const own = path.join(repoRoot(import.meta.url), "console");
  const sources: Record<string, string> = {
    "/": path.join(own, "index.html"),
    "/console/app.js": path.join(own, "app.js"),
    "/console/app.css": path.join(own, "app.css"),
    "/console/vendor/preact.mjs": path.join(pkg("preact"), "dist/preact.mjs"),
    "/console/vendor/hooks.mjs": path.join(pkg("preact"), "hooks/dist/hooks.mjs"),
    // htm exports no package.json: its main file sits beside the ES module.
    "/console/vendor/htm.mjs": path.join(path.dirname(require.resolve("htm")), "htm.mjs"),
    "/console/vendor/uPlot.esm.js": path.join(pkg("uplot"), "dist/uPlot.esm.js"),
    "/console/vendor/uPlot.min.css": path.join(pkg("uplot"), "dist/uPlot.min.css"),
  };
  files = new Map(Object.entries(sources).map(([url, file]) => [url, { type: TYPES[path.extname(file)] ?? "application/octet-stream", body: readFileSync(file) }]));
  return files;
}
