/**
 * `herald doctor`: the pure checks case by case, then the real command against a single server, a
 * three-server JetStream cluster with R3 streams, and misconfigured setups.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { doctorChecks, type DoctorFacts } from "../runtime/cli/doctor-checks.js";
import { allRunning, runCli, TestCluster } from "./helpers/cluster.js";
import { startTestNats } from "./helpers/nats.js";

const facts = (over: Partial<DoctorFacts> = {}, server: Partial<NonNullable<DoctorFacts["server"]>> = {}): DoctorFacts => ({
  connection: { ok: true, login: "connected to nats://a:4222 as user herald" },
  server: { version: "2.10.4", name: "s1", clusterSize: 3, clusterName: "c", jetstream: true, authRequired: true, tlsRequired: true, maxPayload: 1_048_576, ...server },
  account: { storage: 100, maxStorage: -1 },
  streams: [{ name: "HERALD_QUEUE", replicas: 3 }],
  config: { replicas: 3, maxPayloadBytes: 262_144, embedded: false, subjectPrefix: "herald" },
  ...over,
});
const verdicts = (f: DoctorFacts) => Object.fromEntries(doctorChecks(f).map((c) => [c.name, c.verdict]));

describe("doctor checks", () => {
  it("a well-run deployment: everything ok", () => {
    expect(verdicts(facts())).toEqual({ connection: "ok", server: "ok", jetstream: "ok", replicas: "ok", durability: "ok", auth: "ok", payload: "ok", storage: "ok", streams: "ok" });
  });

  it("a connection that failed is the one failure, with its reason", () => {
    const checks = doctorChecks({ ...facts(), connection: { ok: false, error: "NATS at x refused the login as user h: Authorization Violation" } });
    expect(checks).toEqual([expect.objectContaining({ name: "connection", verdict: "fail", detail: expect.stringContaining("Authorization Violation") })]);
  });

  it("more replicas than servers fails, naming a count that works", () => {
    const c = doctorChecks(facts({}, { clusterSize: 1 })).find((x) => x.name === "replicas")!;
    expect(c).toMatchObject({ verdict: "fail", fix: "set nats.replicas to 1, or add servers to the cluster" });
    expect(verdicts(facts({}, { clusterSize: 1 })).durability).toBeUndefined();
  });

  it("one replica: the fsync caveat, and on a cluster the hint to use 3", () => {
    const single = facts({ config: { ...facts().config, replicas: 1 } }, { clusterSize: 1 });
    expect(doctorChecks(single).find((x) => x.name === "durability")).toMatchObject({ verdict: "warn", detail: expect.stringContaining("not an OS crash") });
    expect(verdicts(facts({ config: { ...facts().config, replicas: 1 } }))).toMatchObject({ replicas: "warn", durability: "warn" });
  });

  it("no auth warns; old servers warn; no JetStream fails; payload that does not fit fails", () => {
    expect(verdicts(facts({}, { authRequired: false }))).toMatchObject({ auth: "warn" });
    expect(verdicts(facts({}, { version: "2.9.10" }))).toMatchObject({ server: "warn" });
    expect(verdicts(facts({}, { version: "2.8.4" }))).toMatchObject({ server: "fail" });
    expect(verdicts(facts({}, { jetstream: false }))).toMatchObject({ jetstream: "fail" });
    expect(verdicts(facts({ config: { ...facts().config, maxPayloadBytes: 1_048_576 } }))).toMatchObject({ payload: "fail" });
  });

  it("streams with other replicas warn, one line each; storage near its limit or a full disk warns", () => {
    const checks = doctorChecks(facts({ streams: [{ name: "HERALD_QUEUE", replicas: 1 }, { name: "KV_herald_rules", replicas: 1 }] }));
    expect(checks.filter((c) => c.name === "streams").map((c) => c.fix)).toEqual([
      "nats stream edit HERALD_QUEUE --replicas 3, or set nats.replicas to 1",
      "nats stream edit KV_herald_rules --replicas 3, or set nats.replicas to 1",
    ]);
    expect(verdicts(facts({ account: { storage: 900, maxStorage: 1000 } }))).toMatchObject({ storage: "warn" });
    expect(verdicts(facts({ localDisk: { free: 100 * 1024 ** 2, total: 500 * 1024 ** 3, path: "/x" } }))).toMatchObject({ storage: "warn" });
  });
});

describe("herald doctor", () => {
  let stop: (() => Promise<void>) | undefined;
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
    await stop?.();
    stop = undefined;
  });

  async function configFile(servers: string[], nats: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "herald-doctor-"));
    const file = join(dir, "cluster.config.json");
    await writeFile(file, JSON.stringify({ cluster: "d", nats: { servers, ...nats }, nodes: [{ name: "n1" }], ...extra }));
    const prev = stop;
    stop = async () => {
      await prev?.();
      await rm(dir, { recursive: true, force: true });
    };
    return file;
  }

  it("on a single open server: warnings for durability and auth, exit 0", async () => {
    const nats = await startTestNats();
    stop = nats.stop;
    const r = await runCli(["doctor", "-c", await configFile([nats.url])]);
    console.log(`herald doctor, one open server:\n${r.stdout}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^warn  durability +one copy of every message/m);
    expect(r.stdout).toMatch(/^warn  auth +the server accepts clients without credentials/m);
    expect(r.stdout).toMatch(/^ok    jetstream/m);
  });

  it("on a three-server cluster with R3 streams made by a running node: replicas and durability ok", async () => {
    cluster = await TestCluster.start({ nodes: 1, actors: { ingest: 0, collector: 0, subqueue: 1, processor: 0, pusher: 0 }, natsCluster: { size: 3, replicas: 3 } });
    cluster.startAll();
    await cluster.waitStatus("the node running", allRunning, 60_000);
    const r = await cluster.cli(["doctor"]);
    console.log(`herald doctor, three servers, R3:\n${r.stdout}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok    replicas +nats.replicas 3 on a cluster of 3 servers \(herald-test\)/m);
    expect(r.stdout).toMatch(/^ok    durability +3 copies of every message/m);
    expect(r.stdout).toMatch(/^ok    streams +\d+ streams and buckets, each with 3 replicas/m);
  });

  it("misconfigured: R3 on one server and data too large for max_payload fail, exit 1; a wrong password is the one failure", async () => {
    const nats = await startTestNats();
    stop = nats.stop;
    const bad = await runCli(["doctor", "-c", await configFile([nats.url], { replicas: 3 }, { limits: { maxPayloadBytes: 1_048_576 } })]);
    console.log(`herald doctor, misconfigured:\n${bad.stdout}`);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^fail  replicas +nats.replicas is 3 but NATS is a single server/m);
    expect(bad.stdout).toMatch(/^fail  payload +limits.maxPayloadBytes = 1048576 does not fit/m);
    expect(bad.stdout).toMatch(/^2 failed, \d warnings?$/m);
    expect(bad.stdout).not.toContain("durability");

    const secured = await startTestNats({ config: 'authorization { users: [ { user: herald, password: "right-Pa55word" } ] }' });
    const prev = stop;
    stop = async () => {
      await secured.stop();
      await prev?.();
    };
    const wrong = await runCli(["doctor", "-c", await configFile([secured.url], { auth: { user: "herald", pass: "wrong-Pa55word" } })]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/^fail  connection +NATS at .* refused the login as user herald/m);
    expect(wrong.stdout).not.toContain("wrong-Pa55word");
  });
});
