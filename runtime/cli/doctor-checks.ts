/**
 * What `herald doctor` judges, as a pure function of facts gathered from the config and the NATS
 * servers: each check is ok, warn or fail, with what to do about it. The command gathers the facts
 * (doctor.ts); everything here is unit-tested.
 */
import { payloadRoomProblem } from "../pipeline/queue-io.js";
import { replicaMismatch } from "../nats/storage.js";

export type Verdict = "ok" | "warn" | "fail";

export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
  /** What to do, for warn and fail. */
  fix?: string;
}

export interface DoctorFacts {
  /** How the connection went: the login text on success, the one-line error otherwise. */
  connection: { ok: true; login: string } | { ok: false; error: string };
  server?: {
    version: string;
    name: string;
    /** Servers of its cluster as advertised (`connect_urls`), itself included; 1 when not clustered. */
    clusterSize: number;
    clusterName?: string;
    jetstream: boolean;
    authRequired: boolean;
    tlsRequired: boolean;
    maxPayload: number;
  };
  /** JetStream account usage and limits (bytes; -1 = no limit). */
  account?: { storage: number; maxStorage: number };
  /** Free and total bytes of the embedded server's store filesystem, when it is local. */
  localDisk?: { free: number; total: number; path: string };
  /** Herald's streams as they exist (absent before the first start). */
  streams: { name: string; replicas: number }[];
  config: { replicas: number; maxPayloadBytes: number; embedded: boolean; subjectPrefix: string };
}

/** The oldest nats-server Herald runs on. */
const MIN_VERSION = [2, 9, 0];
const GiB = 1024 ** 3;

export function doctorChecks(f: DoctorFacts): Check[] {
  if (!f.connection.ok) {
    return [{ name: "connection", verdict: "fail", detail: f.connection.error, fix: "fix the address or the login above, then run herald doctor again" }];
  }
  const checks: Check[] = [{ name: "connection", verdict: "ok", detail: f.connection.login }];
  const s = f.server;
  if (!s) return checks;
  checks.push(versionCheck(s.version, s.name), jetStreamCheck(s.jetstream));
  checks.push(replicasCheck(f.config.replicas, s.clusterSize, s.clusterName));
  // With more replicas than servers nothing can be stored: the replicas check says so.
  if (f.config.replicas <= s.clusterSize) checks.push(durabilityCheck(f.config.replicas, s.clusterSize));
  checks.push(authCheck(s.authRequired, s.tlsRequired));
  checks.push(payloadCheck(f.config.maxPayloadBytes, s.maxPayload));
  checks.push(storageCheck(f.account, f.localDisk));
  checks.push(...streamChecks(f.streams, f.config.replicas));
  return checks;
}

function versionCheck(version: string, name: string): Check {
  const parts = version.split(".").map((x) => Number.parseInt(x, 10) || 0);
  const first = MIN_VERSION.findIndex((m, i) => (parts[i] ?? 0) !== m);
  const tooOld = first >= 0 && (parts[first] ?? 0) < MIN_VERSION[first]!;
  if (tooOld) return { name: "server", verdict: "fail", detail: `nats-server ${version} (${name}) is older than ${MIN_VERSION.join(".")}`, fix: "upgrade nats-server to 2.9 or later" };
  if (parts[0] === 2 && (parts[1] ?? 0) < 10) {
    return {
      name: "server",
      verdict: "warn",
      detail: `nats-server ${version} (${name}): works, with known issues Herald works around (README, "Known nats-server issues")`,
      fix: "nats-server 2.10 or later adds sync_interval and registers streams safely; upgrade when you can",
    };
  }
  return { name: "server", verdict: "ok", detail: `nats-server ${version} (${name})` };
}

function jetStreamCheck(on: boolean): Check {
  return on
    ? { name: "jetstream", verdict: "ok", detail: "JetStream is enabled" }
    : { name: "jetstream", verdict: "fail", detail: "JetStream is not enabled on the server", fix: "start nats-server with -js (or jetstream {} in its config)" };
}

function replicasCheck(replicas: number, size: number, cluster: string | undefined): Check {
  const where = size === 1 ? "a single server" : `a cluster of ${size} servers${cluster ? ` (${cluster})` : ""}`;
  if (replicas > size) {
    return {
      name: "replicas",
      verdict: "fail",
      detail: `nats.replicas is ${replicas} but NATS is ${where}: streams with ${replicas} replicas cannot be created`,
      fix: `set nats.replicas to ${size === 1 ? 1 : size >= 5 ? 5 : size >= 3 ? 3 : 1}, or add servers to the cluster`,
    };
  }
  if (size >= 3 && replicas === 1) {
    return { name: "replicas", verdict: "warn", detail: `nats.replicas is 1 on ${where}: losing one server loses its streams' messages`, fix: "set nats.replicas to 3" };
  }
  return { name: "replicas", verdict: "ok", detail: `nats.replicas ${replicas} on ${where}` };
}

function durabilityCheck(replicas: number, size: number): Check {
  if (replicas === 1) {
    return {
      name: "durability",
      verdict: "warn",
      detail:
        "one copy of every message: an acknowledged message survives a process crash but not an OS crash or power loss (nats-server 2.9 syncs to disk about every 2 minutes)",
      fix: size >= 3 ? "set nats.replicas to 3" : "run three nats-servers on separate hosts as a cluster with nats.replicas 3",
    };
  }
  return { name: "durability", verdict: "ok", detail: `${replicas} copies of every message on ${replicas} servers: an acknowledged message survives the loss of ${(replicas - 1) / 2} server${replicas === 3 ? "" : "s"}` };
}

function authCheck(authRequired: boolean, tls: boolean): Check {
  const tlsText = tls ? ", TLS required" : ", no TLS";
  if (!authRequired) {
    return {
      name: "auth",
      verdict: "warn",
      detail: `the server accepts clients without credentials${tlsText}: anyone who can reach it can stop nodes, change rules, read messages`,
      fix: "give each role its own user (deploy/nats/herald-permissions.conf) and set nats.auth",
    };
  }
  return { name: "auth", verdict: "ok", detail: `the server requires credentials${tlsText}` };
}

function payloadCheck(maxPayloadBytes: number, serverMax: number): Check {
  const problem = payloadRoomProblem(maxPayloadBytes, serverMax);
  return problem
    ? { name: "payload", verdict: "fail", detail: problem.split(": lower")[0]!, fix: problem.slice(problem.indexOf(": ") + 2) }
    : { name: "payload", verdict: "ok", detail: `limits.maxPayloadBytes ${maxPayloadBytes} fits the server's max_payload of ${serverMax} bytes` };
}

function storageCheck(account: DoctorFacts["account"], disk: DoctorFacts["localDisk"]): Check {
  if (disk) {
    const pct = Math.round((100 * disk.free) / disk.total);
    const detail = `${(disk.free / GiB).toFixed(1)} GiB free of ${(disk.total / GiB).toFixed(1)} GiB (${pct}%) where the embedded server stores (${disk.path})`;
    if (disk.free < GiB || pct < 10) return { name: "storage", verdict: "warn", detail, fix: "free disk space or move nats.storeDir: a full disk refuses every new message" };
    return { name: "storage", verdict: "ok", detail };
  }
  if (account && account.maxStorage > 0) {
    const pct = Math.round((100 * account.storage) / account.maxStorage);
    const detail = `JetStream storage ${account.storage} of ${account.maxStorage} bytes used (${pct}%, the account's limit)`;
    if (pct >= 80) return { name: "storage", verdict: "warn", detail, fix: "raise the account's JetStream storage limit or purge old dead letters" };
    return { name: "storage", verdict: "ok", detail };
  }
  return {
    name: "storage",
    verdict: "ok",
    detail: `JetStream storage ${account?.storage ?? 0} bytes used, no account limit (the servers' disks are not visible from here: watch them)`,
  };
}

function streamChecks(streams: DoctorFacts["streams"], replicas: number): Check[] {
  if (streams.length === 0) return [{ name: "streams", verdict: "ok", detail: "no Herald streams yet: the first node to start creates them" }];
  const off = streams.filter((s) => s.replicas !== replicas);
  if (off.length === 0) return [{ name: "streams", verdict: "ok", detail: `${streams.length} streams and buckets, each with ${replicas} replica${replicas === 1 ? "" : "s"}` }];
  return off.map((s) => ({
    name: "streams",
    verdict: "warn" as const,
    detail: replicaMismatch(`${s.name.startsWith("KV_") ? "bucket" : "stream"} ${s.name}`, s.replicas, replicas).split(": it is kept")[0]!,
    fix: `nats stream edit ${s.name} --replicas ${replicas}, or set nats.replicas to ${s.replicas}`,
  }));
}

/** The report as `herald doctor` prints it: one line a check, fixes indented below. */
export function renderDoctor(checks: Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.verdict.padEnd(5)} ${c.name.padEnd(11)} ${c.detail}`);
    if (c.fix && c.verdict !== "ok") lines.push(`${" ".repeat(18)}fix: ${c.fix}`);
  }
  const fails = checks.filter((c) => c.verdict === "fail").length;
  const warns = checks.filter((c) => c.verdict === "warn").length;
  lines.push("", fails > 0 ? `${fails} failed, ${warns} warning${warns === 1 ? "" : "s"}` : warns > 0 ? `no failures, ${warns} warning${warns === 1 ? "" : "s"}` : "all good");
  return `${lines.join("\n")}\n`;
}
