/**
 * `npm run bench`: Herald side by side with what a user would pick instead, in one run on one
 * machine, so ratios are meaningful even where absolute figures drift.
 *
 *   npm run bench [-- --quick] [-- --count N] [-- --duration S] [-- --trials N]
 *                 [-- --only raw,herald,webhook,sse,slow,cluster,idle,bullmq,recovery]
 *                 [-- --max-in-flight 16,64,256] [-- --baseline DIR [--rounds N]]
 *
 * --count: messages per full-speed scenario; --duration: seconds of the fixed half-load scenario;
 * --trials: failover and respawn trials; --max-in-flight: also run the 1-node full-speed scenario
 * once per `pipeline.maxInFlight` value listed, side by side in the same run; --baseline: also run
 * the 1-node full-speed scenario with another built Herald checkout, --rounds times (default 3),
 * alternating which goes first, and report medians (a change measured in one run).
 *
 * Prints progress on stderr, one table with ratios on stdout, and writes bench/results/latest.json.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { resolve } from "node:path";
import { findNatsServer } from "../runtime/nats/server.js";
import { bullmq, redisReachable, type BullResult } from "./lib/bullmq.js";
import { heraldEndToEnd, type HeraldResult } from "./lib/herald.js";
import { rawJetStream, type ThroughputResult } from "./lib/raw.js";
import { recovery, type RecoveryResult } from "./lib/recovery.js";
import { sseFanout, type SseResult } from "./lib/sse.js";
import { slowEndpoint, type SlowEndpointResult } from "./lib/slow-endpoint.js";
import { idleLatency } from "./lib/idle.js";
import { parseArgs } from "node:util";
import { parseCommandLine } from "./lib/args.js";
import { log, type Spread } from "./lib/stats.js";

const options = {
  quick: { type: "boolean", default: false },
  count: { type: "string" },
  trials: { type: "string" },
  duration: { type: "string" },
  inflight: { type: "string", default: "1000" },
  only: { type: "string" },
  "max-in-flight": { type: "string" },
  baseline: { type: "string" },
  rounds: { type: "string", default: "3" },
  out: { type: "string", default: "bench/results/latest.json" },
} as const;

const USAGE = `usage: npm run bench [-- OPTIONS]

  --quick               under a minute: fewer messages, one recovery trial, no 4-node run
  --count N             messages per full-speed scenario (default 20000; 3000 with --quick)
  --duration S          seconds of the fixed half-load scenario (default 10)
  --trials N            failover and respawn trials (default 5)
  --only LIST           scenarios, comma-separated: raw,herald,webhook,sse,slow,cluster,idle,bullmq,recovery
  --inflight N          JetStream publish acks in flight at full speed (default 1000)
  --max-in-flight LIST  also run the 1-node scenario per pipeline.maxInFlight value (16,64,256)
  --baseline DIR        also run the 1-node scenario with another built checkout, side by side
  --rounds N            rounds of --baseline, alternating which build goes first (default 3)
  --out FILE            where the results go (default bench/results/latest.json)
`;

const { values } = parseCommandLine("herald bench", USAGE, () => parseArgs({ options }));
const quick = values.quick!;
const count = Number(values.count ?? (quick ? 3000 : 20_000));
const trials = Number(values.trials ?? (quick ? 1 : 5));
const duration = Number(values.duration ?? (quick ? 3 : 10));
for (const [flag, v] of [["--count", count], ["--trials", trials], ["--duration", duration]] as const) {
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`herald bench: ${flag} must be a number > 0`);
    process.exit(2);
  }
}
const inflight = Number(values.inflight);
const sweep = (values["max-in-flight"] ?? "").split(",").filter(Boolean).map(Number);
if (sweep.some((v) => !Number.isInteger(v) || v < 1)) {
  console.error("herald bench: --max-in-flight takes integers ≥ 1, comma-separated (16,64,256)");
  process.exit(2);
}
/** Another Herald checkout, built (`npm run build`), whose 1-node scenario runs beside this one's. */
const baseline = values.baseline === undefined ? undefined : baselineOf(values.baseline);
const only = new Set((values.only ?? "raw,herald,webhook,sse,slow,cluster,idle,bullmq,recovery").split(","));
if (quick && !values.only) only.delete("cluster");

interface Results {
  raw?: ThroughputResult;
  herald?: HeraldResult;
  heraldHalf?: HeraldResult;
  webhook?: HeraldResult;
  slow?: SlowEndpointResult;
  sse?: SseResult;
  cluster?: HeraldResult;
  /** Publish-to-push latency of one message at a time on the 4-node example, ms. */
  idle?: Spread;
  bullmq?: BullResult | { skipped: string };
  /** The 1-node full-speed scenario run by this build and another (--baseline), alternately. */
  baseline?: { label: string; rounds: { thisBuild: HeraldResult; baseline: HeraldResult }[] };
  /** The 1-node full-speed scenario per `pipeline.maxInFlight` value (--max-in-flight). */
  maxInFlight?: { value: number; result: HeraldResult }[];
  recovery?: RecoveryResult;
}

async function main(): Promise<void> {
  const r: Results = {};
  const t0 = performance.now();
  if (only.has("raw")) {
    log(`raw JetStream: ${count} messages, ${inflight} acks in flight…`);
    r.raw = await rawJetStream(count, inflight);
  }
  if (only.has("herald")) {
    log(`Herald, 1 node, nats channel, full speed: ${count} messages…`);
    r.herald = await heraldEndToEnd({ nodes: 1, channel: "nats", count, inflight });
    const rate = Math.max(100, Math.round(r.herald.msgsPerSec / 2));
    log(`Herald, 1 node, nats channel, fixed load ${rate} msgs/s (half of full speed) for ${duration} s…`);
    r.heraldHalf = await heraldEndToEnd({ nodes: 1, channel: "nats", count: Math.round(rate * duration), inflight, rate });
  }
  if (baseline) {
    // Alternating which goes first, so neither build always gets the warmer (or busier) machine.
    const rounds = Number(values.rounds);
    r.baseline = { label: baseline.label, rounds: [] };
    for (let i = 0; i < rounds; i++) {
      const run = (cli?: string) => heraldEndToEnd({ nodes: 1, channel: "nats", count, inflight, ...(cli ? { cli } : {}) });
      log(`round ${i + 1}/${rounds}: this build and ${baseline.label}, 1 node, nats channel, full speed: ${count} messages each…`);
      const [first, second] = i % 2 === 0 ? [await run(), await run(baseline.cli)] : [await run(baseline.cli), await run()];
      r.baseline.rounds.push(i % 2 === 0 ? { thisBuild: first, baseline: second } : { thisBuild: second, baseline: first });
    }
  }
  for (const value of sweep) {
    log(`Herald, 1 node, nats channel, full speed, pipeline.maxInFlight ${value}: ${count} messages…`);
    (r.maxInFlight ??= []).push({ value, result: await heraldEndToEnd({ nodes: 1, channel: "nats", count, inflight, maxInFlight: value }) });
  }
  if (only.has("webhook")) {
    log(`Herald, 1 node, webhook channel to a loopback server: ${count} messages…`);
    r.webhook = await heraldEndToEnd({ nodes: 1, channel: "webhook", count, inflight });
  }
  if (only.has("sse")) {
    log(`Herald, 1 node, sse channel, 1,000 clients connected: ${count} messages…`);
    r.sse = await sseFanout(count, inflight, 1000);
  }
  if (only.has("slow")) {
    log(`Herald, 1 node, webhook: a fast topic alone and beside a slow endpoint…`);
    r.slow = await slowEndpoint(count, inflight);
  }
  if (only.has("cluster")) {
    log(`Herald, the 4-node example shape, nats channel: ${count} messages…`);
    r.cluster = await heraldEndToEnd({ nodes: 4, channel: "nats", count, inflight });
  }
  if (only.has("idle")) {
    const messages = quick ? 50 : 200;
    log(`Herald, the 4-node example, default rules: ${messages} messages one at a time…`);
    r.idle = await idleLatency(messages);
  }
  if (only.has("bullmq")) {
    if (await redisReachable()) {
      log(`BullMQ on Redis 127.0.0.1:6379: ${count} no-op jobs, concurrency 50…`);
      r.bullmq = await bullmq(count);
    } else {
      log("BullMQ: skipped (no Redis answering on 127.0.0.1:6379)");
      r.bullmq = { skipped: "no Redis answering on 127.0.0.1:6379" };
    }
  }
  if (only.has("recovery")) {
    log(`recovery: ${trials} failover trials and ${trials} actor respawns on 4 nodes…`);
    r.recovery = await recovery(trials);
  }
  const report = render(r);
  process.stdout.write(report);
  const out = {
    date: new Date().toISOString(),
    commit: git(),
    machine: { cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, natsServer: natsVersion() },
    options: { count, duration, trials, inflight, quick, maxInFlight: sweep },
    seconds: Math.round((performance.now() - t0) / 1000),
    results: r,
  };
  await mkdir(new URL("../../bench/results/", import.meta.url), { recursive: true });
  await writeFile(values.out!, `${JSON.stringify(out, null, 2)}\n`);
  log(`wrote ${values.out} (${out.seconds} s)`);
}

function render(r: Results): string {
  const n = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "-" : Math.round(x).toLocaleString("en-US"));
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : "-");
  const rows: string[][] = [];
  const bull = r.bullmq && "msgsPerSec" in r.bullmq ? r.bullmq : undefined;
  const row = (name: string, x: ThroughputResult | undefined, extra = "", ratios = true) => {
    if (!x) return;
    const vsRaw = ratios ? ratio(x.msgsPerSec, r.raw?.msgsPerSec) : "-";
    const vsBull = ratios ? ratio(x.msgsPerSec, bull?.msgsPerSec) : "-";
    rows.push([name, n(x.msgsPerSec), n(x.p50), n(x.p95), n(x.p99), vsRaw, vsBull, extra]);
  };
  const rss = (x: HeraldResult | undefined) => (x ? `peak RSS/node ${Object.values(x.peakRssMiB).map((v) => v ?? "?").join("/")} MiB` : "");
  row("raw JetStream publish + consume/ack", r.raw);
  row("Herald 1 node, nats, full speed", r.herald, rss(r.herald));
  if (r.baseline) {
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ours = med(r.baseline.rounds.map((x) => x.thisBuild.msgsPerSec));
    const theirs = med(r.baseline.rounds.map((x) => x.baseline.msgsPerSec));
    const each = r.baseline.rounds.map((x) => ratio(x.thisBuild.msgsPerSec, x.baseline.msgsPerSec)).join(", ");
    const rounds = r.baseline.rounds;
    const cpuMed = (pick: (x: (typeof rounds)[number]) => HeraldResult) => {
      const us = rounds.flatMap((x) => (pick(x).cpuUs?.herald === undefined ? [] : [pick(x).cpuUs!.herald!]));
      return us.length === 0 ? "" : `; Herald nodes' CPU ${med(us).toFixed(0)} µs/msg`;
    };
    rows.push([`Herald 1 node, nats: this build, median of ${r.baseline.rounds.length}`, n(ours), "", "", "", ratio(ours, r.raw?.msgsPerSec), ratio(ours, bull?.msgsPerSec), `rounds alternate which build goes first${cpuMed((x) => x.thisBuild)}`]);
    rows.push([`Herald 1 node, nats: ${r.baseline.label}, median of ${r.baseline.rounds.length}`, n(theirs), "", "", "", ratio(theirs, r.raw?.msgsPerSec), ratio(theirs, bull?.msgsPerSec), `this build ÷ baseline ${ratio(ours, theirs)} (per round ${each})${cpuMed((x) => x.baseline)}`]);
  }
  // A fixed offered load: its latency is the point; its rate is what was offered.
  row("Herald 1 node, nats, half load", r.heraldHalf, "latency at half of full speed", false);
  for (const { value, result } of r.maxInFlight ?? []) row(`Herald 1 node, nats, maxInFlight ${value}`, result, rss(result));
  row("Herald 1 node, webhook", r.webhook, rss(r.webhook));
  row("Herald 4 nodes, nats", r.cluster, rss(r.cluster));
  if (r.sse) row(`Herald 1 node, sse, ${n(r.sse.clients)} clients`, r.sse, `each push to 1 of ${n(r.sse.clients)} connected streams; connected in ${n(r.sse.connectMs)} ms; peak RSS ${r.sse.peakRssMiB ?? "?"} MiB`);
  if (r.slow) {
    const sl = r.slow;
    rows.push(["Herald 1 node, webhook, fast topic alone", n(sl.soloPerSec), "", "", "", ratio(sl.soloPerSec, r.raw?.msgsPerSec), ratio(sl.soloPerSec, bull?.msgsPerSec), ""]);
    rows.push([`Herald 1 node, webhook, fast topic beside a ${sl.slowDelayMs / 1000} s endpoint`, n(sl.mixedPerSec), "", "", "", ratio(sl.mixedPerSec, r.raw?.msgsPerSec), ratio(sl.mixedPerSec, bull?.msgsPerSec), `${ratio(sl.mixedPerSec, sl.soloPerSec)} of alone; ${n(sl.slowDelivered)} slow pushes meanwhile`]);
  }
  if (r.idle) rows.push([`Herald 4 nodes, idle: one message at a time`, "", n(r.idle.p50), "", "", "", "", `max ${n(r.idle.max)} ms over ${r.idle.n} messages, default rules`]);
  if (bull) row("BullMQ 50 workers (no-op jobs)", bull, `addBulk ${n(bull.addPerSec)}/s`);
  else if (r.bullmq) rows.push(["BullMQ", "skipped", "", "", "", "", "", (r.bullmq as { skipped: string }).skipped]);
  const head = ["scenario", "msgs/s", "p50 ms", "p95 ms", "p99 ms", "÷ raw", "÷ BullMQ", "notes"];
  const lines = [`| ${head.join(" | ")} |`, `| --- | ${head.slice(1).map(() => "---:").join(" | ")} |`, ...rows.map((x) => `| ${x.join(" | ")} |`)];
  if (r.recovery) {
    const f = r.recovery.failoverMs;
    const a = r.recovery.respawnMs;
    lines.push(
      "",
      `| recovery (heartbeat ${r.recovery.heartbeat.intervalMs}/${r.recovery.heartbeat.timeoutMs} ms) | p50 ms | max ms | trials |`,
      "| --- | ---: | ---: | ---: |",
      `| master failover: SIGKILL → new master active | ${n(f.p50)} | ${n(f.max)} | ${f.n} |`,
      `| actor respawn: crash → running again | ${n(a.p50)} | ${n(a.max)} | ${a.n} |`,
    );
  }
  const cpuRows: [string, ThroughputResult | undefined][] = [
    ["raw JetStream publish + consume/ack", r.raw],
    ["Herald 1 node, nats, full speed", r.herald],
    ["Herald 1 node, nats, half load", r.heraldHalf],
    ["Herald 1 node, webhook", r.webhook],
    ["Herald 4 nodes, nats", r.cluster],
    ["Herald 1 node, sse, 1,000 clients (harness: the clients too)", r.sse],
  ];
  const cpu = cpuRows.filter(([, x]) => x?.cpuUs);
  if (cpu.length > 0) {
    const us = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(0));
    lines.push("", "| CPU per message, µs (measured window) | harness | nats-server | Herald nodes | total |", "| --- | ---: | ---: | ---: | ---: |");
    for (const [name, x] of cpu) {
      const c = x!.cpuUs!;
      const total = [c.harness, c.nats, c.herald].reduce<number>((a, b) => a + (b ?? 0), 0);
      lines.push(`| ${name} | ${us(c.harness)} | ${us(c.nats)} | ${us(c.herald)} | ${us(total)} |`);
    }
  }
  if (r.herald?.metrics) {
    lines.push("", `/metrics of the one-node full-speed run, its last scrape (${r.herald.scrapes ?? 0} scrapes, once a second; Herald's series, buckets left out):`, "", "```", r.herald.metrics, "```");
  }
  return `${lines.join("\n")}\n`;
}

function baselineOf(dir: string): { label: string; cli: string } {
  const cli = resolve(dir, "dist/runtime/cli/main.js");
  if (!existsSync(cli)) {
    console.error(`herald bench: --baseline ${dir}: no ${cli} (run npm run build there first)`);
    process.exit(2);
  }
  let commit = "";
  try {
    commit = execFileSync("git", ["-C", dir, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    // Not a git checkout: the directory names it.
  }
  return { label: `baseline ${commit || dir}`, cli };
}

function git(): string | undefined {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

function natsVersion(): string | undefined {
  try {
    return execFileSync(findNatsServer(), ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

main().then(
  // Client libraries (Redis, NATS) may leave sockets closing: the run is over.
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
