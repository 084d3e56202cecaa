/**
 * Sums up the CPU profiles a profiled run wrote (HERALD_PROF_DIR=DIR npm run bench -- --only …):
 * for each thread, its busy time and the functions that took most of it (self time).
 *
 *   node dist/bench/profile.js DIR [--top N] [--since S]
 *
 * --since: leave out each thread's first S seconds (its startup: module loading and compiling).
 * Each thread's busy time is also split by area: the garbage collector, the NATS client, msgpack,
 * the template engine, Node's runtime (streams, sockets, timers), Herald's own code, the rest.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ options: { top: { type: "string", default: "15" }, since: { type: "string", default: "0" } }, allowPositionals: true });
const sinceUs = Number(values.since) * 1e6;

/** Which part of the stack a frame belongs to. */
function areaOf(cf: ProfileNode["callFrame"]): string {
  if (cf.functionName === "(garbage collector)") return "gc";
  if (cf.url.includes("@nats-io/")) return "nats client";
  if (cf.url.includes("msgpackr")) return "msgpack";
  if (cf.url.includes("liquidjs")) return "templates";
  if (cf.url.includes("/dist/")) return "herald";
  if (cf.url === "" || cf.url.startsWith("node:")) return "node runtime";
  return "other";
}
const dir = positionals[0];
if (!dir) {
  console.error("usage: node dist/bench/profile.js DIR [--top N]");
  process.exit(2);
}
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).sort()) {
  const p = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let at = 0;
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    at += us;
    if (at < sinceUs) return;
    const cf = frames.get(id)!;
    total += us;
    if (cf.functionName === "(idle)") {
      idle += us;
      return;
    }
    const key = `${cf.functionName || "(anonymous)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + us);
    const area = areaOf(cf);
    areas.set(area, (areas.get(area) ?? 0) + us);
  });
  const busy = total - idle;
  // Which thread: the actor kind whose code it ran most (the supervisor runs none).
  const kinds = new Map<string, number>();
  for (const [key, us] of self) {
    const kind = /actors\/([a-z]+)\//.exec(key)?.[1] ?? (/ (subqueue|processor|pusher|ingest|collector)\/[^ ]+:\d+$/.exec(key)?.[1]);
    if (kind) kinds.set(kind, (kinds.get(kind) ?? 0) + us);
  }
  // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main one.
  const main = file.split(".")[4] === "0";
  const thread = main ? "supervisor" : ([...kinds].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "?");
  console.log(`\n${file} (${thread}): busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s`);
  const split = [...areas].sort((a, b) => b[1] - a[1]).map(([a, us]) => `${a} ${((100 * us) / busy).toFixed(0)} %`);
  console.log(`  by area: ${split.join(", ")}`);
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(`  ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${key}`);
  }
}
