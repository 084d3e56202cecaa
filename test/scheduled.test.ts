/**
 * Scheduled delivery end to end on real clusters: messages with `deliverAt` or `delayMs`, sent over
 * every ingest path, are pushed within 250 ms of their time and never before it; a cancelled one
 * never arrives; and the bound holds across a master failover, a nats-server restart and a master
 * whose wall clock is 5 s off.
 *
 * Lateness is measured on this process's wall clock, which is the nats-server's (same host): a
 * message is due at its `deliverAt`, or `delayMs` after it was sent (the server stores it a moment
 * later, so that is a bound on the early side), and it arrives when the `nats` channel's push
 * reaches the test's subscriber.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../runtime/config/index.js";
import { HeraldError } from "../runtime/errors.js";
import type { ClusterStatus } from "../runtime/supervisor/status.js";
import { cancelScheduled, CANCEL_CUTOFF_MS, ServerClock } from "../runtime/scheduled/index.js";
import { allRunning, TestCluster, type TestClusterOptions } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Pushed no later than this after its time, ms. */
const BOUND_MS = 250;
/** Messages due at the same moment in the burst test (HERALD_TEST_BURST to measure others). */
const BURST = Number(process.env.HERALD_TEST_BURST ?? 200);
/** Clock estimates and ms rounding: a push may be this much "early" on paper, ms. */
const EARLY_SLACK_MS = 3;

const pipeline = { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 };
const none = { ingest: 0, collector: 0, subqueue: 0, processor: 0, pusher: 0 };

interface Sent {
  id: string;
  /** When it is due, on this host's (= the server's) wall clock, ms. */
  due: number;
  how: string;
}

/** Every push on herald.out.demo, by id: arrival on this host's wall clock and monotonic clock. */
function sink(c: TestCluster): Map<string, { at: number; mono: number; count: number }> {
  const arrived = new Map<string, { at: number; mono: number; count: number }>();
  c.nc.subscribe("herald.out.demo", {
    callback: (_e, m) => {
      const id = m.json<{ id: string }>().id;
      const seen = arrived.get(id);
      if (seen) seen.count++;
      else arrived.set(id, { at: Date.now(), mono: performance.now(), count: 1 });
    },
  });
  return arrived;
}

/** Every node alive, every actor running (a node may run none), and a master. */
const ready = (s: ClusterStatus) =>
  s.master?.node != null && s.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")) && s.nodes.some((n) => n.actors.length > 0);

async function start(opts: TestClusterOptions = {}): Promise<{ c: TestCluster; arrived: ReturnType<typeof sink> }> {
  cluster = await TestCluster.start({
    nodes: 1,
    actors: pipeline,
    ...opts,
    extra: { topics: { demo: { channel: "nats" } }, ...opts.extra },
  });
  const c = cluster;
  const arrived = sink(c);
  await c.nc.flush();
  c.startAll();
  await c.waitStatus("the cluster running with a master", ready, 30_000);
  return { c, arrived };
}

/** Submits over herald.submit (request/reply); the reply says it is durable. */
async function submit(c: TestCluster, body: Record<string, unknown>): Promise<string> {
  const reply = (await c.nc.request("herald.submit", JSON.stringify({ topic: "demo", data: {}, ...body }), { timeout: 5000 })).json<{ ok: boolean; id: string; error?: string }>();
  if (!reply.ok) throw new Error(`submit refused: ${reply.error}`);
  return reply.id;
}

/** Publishes fire-and-forget on herald.in.demo (a JetStream publish, for the ack). */
async function publishRaw(c: TestCluster, body: Record<string, unknown>): Promise<void> {
  await jetstream(c.nc).publish("herald.in.demo", JSON.stringify({ data: {}, ...body }));
}

async function postHttp(c: TestCluster, body: Record<string, unknown>): Promise<string> {
  const port = (c.config.nodes[0] as { http: { port: number } }).http.port;
  const res = await fetch(`http://127.0.0.1:${port}/v1/messages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ topic: "demo", data: {}, ...body }) });
  const answer = (await res.json()) as { id?: string; error?: string };
  if (res.status !== 202) throw new Error(`POST /v1/messages answered ${res.status}: ${answer.error}`);
  return answer.id!;
}

/** Waits for every message and returns each one's lateness (arrival − due), ms; checks none came twice. */
async function lateness(arrived: ReturnType<typeof sink>, sent: Sent[], timeoutMs: number): Promise<number[]> {
  await waitFor(() => sent.every((s) => arrived.has(s.id)), {
    timeoutMs,
    what: `every scheduled message (missing: ${sent.filter((s) => !arrived.has(s.id)).map((s) => s.how).join(", ")})`,
  });
  return sent.map((s) => arrived.get(s.id)!.at - s.due);
}

function summary(late: number[]): string {
  const sorted = [...late].sort((a, b) => a - b);
  const p = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return `n=${late.length} min ${Math.round(sorted[0]!)} ms, p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, max ${Math.round(sorted[sorted.length - 1]!)} ms`;
}

/** Each message pushed once, not before its time and at most BOUND_MS after. */
function expectOnTime(arrived: ReturnType<typeof sink>, sent: Sent[], late: number[]): void {
  sent.forEach((s, i) => {
    expect(late[i], `${s.how} (${s.id}) pushed ${Math.round(late[i]!)} ms after its time`).toBeGreaterThanOrEqual(-EARLY_SLACK_MS);
    expect(late[i], `${s.how} (${s.id}) pushed ${Math.round(late[i]!)} ms after its time`).toBeLessThanOrEqual(BOUND_MS);
    expect(arrived.get(s.id)!.count, `${s.how} pushed once`).toBe(1);
  });
}

/**
 * Schedules `perPath` messages on each ingest path, with `deliverAt` (ms and ISO) and `delayMs`,
 * due `leadMs` from now and spread 50 ms apart.
 */
async function scheduleOnEveryPath(c: TestCluster, leadMs: number, perPath = 2, withHttp = true): Promise<Sent[]> {
  const sent: Sent[] = [];
  let k = 0;
  const next = () => leadMs + 50 * k++;
  for (let i = 0; i < perPath; i++) {
    let due = Date.now() + next();
    sent.push({ id: await submit(c, { deliverAt: due }), due, how: "submit deliverAt ms" });
    due = Date.now() + next();
    sent.push({ id: await submit(c, { deliverAt: new Date(due).toISOString() }), due, how: "submit deliverAt ISO" });
    let delay = next();
    let t = Date.now();
    sent.push({ id: await submit(c, { delayMs: delay }), due: t + delay, how: "submit delayMs" });
    due = Date.now() + next();
    let id = `raw-at-${i}-${due}`;
    await publishRaw(c, { id, deliverAt: due });
    sent.push({ id, due, how: "herald.in deliverAt" });
    delay = next();
    t = Date.now();
    id = `raw-in-${i}-${t}`;
    await publishRaw(c, { id, delayMs: delay });
    sent.push({ id, due: t + delay, how: "herald.in delayMs" });
    if (!withHttp) continue;
    due = Date.now() + next();
    sent.push({ id: await postHttp(c, { deliverAt: due }), due, how: "HTTP deliverAt" });
    delay = next();
    t = Date.now();
    sent.push({ id: await postHttp(c, { delayMs: delay }), due: t + delay, how: "HTTP delayMs" });
  }
  return sent;
}

describe("scheduled delivery", () => {
  it("messages scheduled over herald.in, herald.submit and HTTP are pushed within 250 ms of their time, not before", async () => {
    const { c, arrived } = await start({ http: true });
    const sent = await scheduleOnEveryPath(c, 1500, 3);
    // Nothing is pushed before its time: they wait in the scheduled stream, and status counts them.
    const s = await c.status();
    expect(s.scheduled.pending).toBeGreaterThan(0);
    const late = await lateness(arrived, sent, 15_000);
    console.log(`scheduled delivery, every path, no fault: lateness ${summary(late)}`);
    expectOnTime(arrived, sent, late);
    await c.waitStatus("nothing left scheduled", (st) => st.scheduled.pending === 0, 5000);
  });

  it(`a burst: ${BURST} messages due at the same moment are pushed within 250 ms of it`, async () => {
    const { c, arrived } = await start();
    const js = jetstream(c.nc);
    const releasedAt: number[] = [];
    c.nc.subscribe("herald.in.demo", { callback: () => void releasedAt.push(Date.now()) });
    const due = Date.now() + 3000;
    const sent: Sent[] = [];
    // Half submitted (ingest writes them to the scheduled stream), half published raw (the sub-queue moves them).
    await Promise.all(
      Array.from({ length: BURST / 2 }, async (_, i) => {
        sent.push({ id: await submit(c, { deliverAt: due }), due, how: `submit #${i}` });
        const id = `burst-${i}`;
        await js.publish("herald.in.demo", JSON.stringify({ id, data: {}, deliverAt: due }));
        sent.push({ id, due, how: `herald.in #${i}` });
      }),
    );
    expect(Date.now(), `all ${BURST} scheduled before they were due`).toBeLessThan(due);
    const late = await lateness(arrived, sent, 20_000);
    console.log(`scheduled delivery, ${BURST} due at the same moment: lateness ${summary(late)}`);
    console.log(`  of which, from the due time to the release on herald.in.demo: ${summary(releasedAt.filter((t) => t >= due - 100).map((t) => t - due))}`);
    expectOnTime(arrived, sent, late);
  });

  it("herald scheduled list and cancel: a cancelled message never arrives, and late or unknown cancels are refused", async () => {
    const { c, arrived } = await start();
    const herald = (...args: string[]) => c.cli([...args, "-c", c.configFile], { NATS_URL: "" });
    const t0 = Date.now();
    const gone = await submit(c, { deliverAt: t0 + 6000 });
    const keep = await submit(c, { deliverAt: t0 + 6500, to: "ada" });
    // Due after the cancelled one: once it is here, the cancelled one would have been too.
    const sentinel = await submit(c, { deliverAt: t0 + 7000 });
    const published = await herald("publish", "demo", "--in", "3s");
    expect(published.stderr).toBe("");
    expect(published.code).toBe(0);
    const soon = published.stdout.trim();

    const listed = await herald("scheduled", "list", "--json");
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as { id: string; topic: string; dueAt: number; due: string; to?: string }[];
    expect(rows.map((r) => r.id)).toEqual([soon, gone, keep, sentinel]);
    expect(rows[1]).toMatchObject({ id: gone, topic: "demo", dueAt: t0 + 6000, due: new Date(t0 + 6000).toISOString() });
    expect(rows[2]!.to).toBe("ada");
    const one = await herald("scheduled", "list", "--topic", "demo", "--json", "--limit", "2");
    expect((JSON.parse(one.stdout) as { id: string }[]).map((r) => r.id)).toEqual([soon, gone]);
    expect(one.stderr).toBe("showing the 2 due first of 4 scheduled messages (--limit N for more)\n");
    expect((await herald("scheduled", "list", "--topic", "other")).stdout).toBe("no scheduled messages for topic other\n");
    const table = await herald("scheduled", "list");
    expect(table.stdout).toMatch(/^ID\s+TOPIC\s+DUE\s+TO\n/);
    expect(table.stdout).toContain(`${keep}  demo   ${new Date(t0 + 6500).toISOString()}  ada`);
    const status = JSON.parse((await herald("status", "--json")).stdout) as { scheduled: { pending: number } };
    expect(status.scheduled.pending).toBe(4);
    expect((await herald("status")).stdout).toContain("scheduled 4");

    const cancelled = await herald("scheduled", "cancel", gone);
    expect(cancelled.stderr).toBe("");
    expect(cancelled.stdout).toBe(`cancelled ${gone} (topic demo, due ${new Date(t0 + 6000).toISOString()})\n`);
    const unknown = await herald("scheduled", "cancel", "no-such-id");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('herald: no scheduled message "no-such-id": see herald scheduled list (a message released more than a day ago is no longer known)\n');

    await waitFor(() => arrived.has(soon), { timeoutMs: 10_000, what: "the message published with --in 3s" });
    const released = await herald("scheduled", "cancel", soon);
    expect(released.code).toBe(1);
    expect(released.stderr).toMatch(new RegExp(`^herald: scheduled message "${soon}" \\(topic demo\\) was already released at \\S+Z, due \\S+Z: it can no longer be cancelled\n$`));

    await waitFor(() => arrived.has(sentinel), { timeoutMs: 15_000, what: "the sentinel, due after the cancelled message" });
    expect(arrived.has(keep)).toBe(true);
    expect(arrived.has(gone), "the cancelled message was pushed").toBe(false);
    await c.waitStatus("nothing left scheduled", (st) => st.scheduled.pending === 0, 5000);
  });

  it("a message due within a second of now cannot be cancelled, and stays scheduled", async () => {
    const { c, arrived } = await start();
    const clock = ServerClock.overNats(c.nc, "herald", "test");
    const { config } = await loadConfig(c.configFile);
    const id = await submit(c, { delayMs: CANCEL_CUTOFF_MS - 300 });
    const refusal = await cancelScheduled(c.nc, config, clock, id).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(HeraldError);
    expect((refusal as HeraldError).code).toBe("TOO_LATE");
    expect((refusal as HeraldError).message).toMatch(new RegExp(`^scheduled message "${id}" \\(topic demo\\) is due in \\d+ ms: a message cannot be cancelled within 1000 ms of its time$`));
    await waitFor(() => arrived.has(id), { timeoutMs: 10_000, what: "the message that could not be cancelled" });
  });

  it("the HTTP API lists and cancels scheduled messages, with the statuses /openapi.json documents; /metrics counts them", async () => {
    const { c, arrived } = await start({ http: true });
    const base = `http://127.0.0.1:${(c.config.nodes[0] as { http: { port: number } }).http.port}`;
    const t0 = Date.now();
    const gone = await postHttp(c, { deliverAt: t0 + 5000, to: "bob" });
    const sentinel = await postHttp(c, { deliverAt: t0 + 5500 });
    const soon = await postHttp(c, { delayMs: 600 });
    const listed = await fetch(`${base}/v1/scheduled?limit=2`);
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { total: number; scheduled: { id: string; to?: string; dueAt: number }[] };
    expect(body.total).toBe(3);
    expect(body.scheduled.map((r) => r.id)).toEqual([soon, gone]);
    expect(body.scheduled[1]).toMatchObject({ to: "bob", dueAt: t0 + 5000 });
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^herald_scheduled_pending [23]$/m);
    const seen: [string, string, number][] = [["/v1/scheduled", "get", listed.status]];
    const del = (id: string, query = "") => fetch(`${base}/v1/scheduled/${encodeURIComponent(id)}${query}`, { method: "DELETE" });
    const tooLate = await del(soon);
    seen.push(["/v1/scheduled/{id}", "delete", tooLate.status]);
    expect(tooLate.status).toBe(409);
    expect(((await tooLate.json()) as { error: string }).error).toMatch(/cannot be cancelled within 1000 ms of its time|was already released/);
    const ok = await del(gone);
    seen.push(["/v1/scheduled/{id}", "delete", ok.status]);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ cancelled: { id: gone, topic: "demo", dueAt: t0 + 5000 } });
    const again = await del(gone);
    seen.push(["/v1/scheduled/{id}", "delete", again.status]);
    expect(again.status).toBe(404);
    const badTopic = await del(sentinel, "?topic=nope");
    seen.push(["/v1/scheduled/{id}", "delete", badTopic.status]);
    expect(badTopic.status).toBe(404);
    const badLimit = await fetch(`${base}/v1/scheduled?limit=0`);
    seen.push(["/v1/scheduled", "get", badLimit.status]);
    expect(badLimit.status).toBe(400);
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [p, m, status] of seen) expect(Object.hasOwn(doc.paths[p]?.[m]?.responses ?? {}, String(status)), `${m} ${p} answered ${status}, which /openapi.json does not list`).toBe(true);
    await waitFor(() => arrived.has(sentinel), { timeoutMs: 15_000, what: "the sentinel, due after the cancelled message" });
    expect(arrived.has(soon)).toBe(true);
    expect(arrived.has(gone), "the cancelled message was pushed").toBe(false);
  });

  it("herald publish --at and --in schedule; bad values are refused with the reason", async () => {
    const { c, arrived } = await start();
    const herald = (...args: string[]) => c.cli([...args, "-c", c.configFile], { NATS_URL: "" });
    const due = Date.now() + 2500;
    const at = await herald("publish", "demo", "--at", new Date(due).toISOString());
    expect(at.code, at.stderr).toBe(0);
    const atMs = await herald("publish", "demo", "--at", String(due + 100));
    expect(atMs.code, atMs.stderr).toBe(0);
    const bad = [
      [["--in", "5 minutes"], /^herald: --in: "5 minutes" is not a duration: write it as a number and a unit \(ms, s, m, h, d\), such as 1500ms, 90s, 5m, 2h or 1h30m\n$/],
      [["--at", "1700000000"], /^herald: --at: must be ms since the epoch, 2000 or later .*1700000000 looks like seconds: multiply by 1000\n$/],
      [["--at", "2026-12-24 18:00"], /^herald: --at: "2026-12-24 18:00" is not an ISO 8601 time with an offset/],
      [["--at", String(due), "--in", "5s"], /^herald: herald publish: give --at or --in, not both\n$/],
      [["--in", "400d"], /over the longest delay, 366 days/],
    ] as const;
    for (const [args, message] of bad) {
      const r = await herald("publish", "demo", ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const both = await c.nc.request("herald.submit", JSON.stringify({ topic: "demo", deliverAt: due, delayMs: 5 }), { timeout: 5000 });
    expect(both.json()).toMatchObject({ ok: false, reason: "invalid", error: expect.stringMatching(/^"deliverAt" and "delayMs" were both given/) });
    const ids = [at.stdout.trim(), atMs.stdout.trim()];
    const late = await lateness(arrived, [{ id: ids[0]!, due, how: "--at ISO" }, { id: ids[1]!, due: due + 100, how: "--at ms" }], 10_000);
    expectOnTime(arrived, [{ id: ids[0]!, due, how: "--at ISO" }, { id: ids[1]!, due: due + 100, how: "--at ms" }], late);
  });

  it("across a master failover: messages are pushed on time, those due during the failover as soon as a new master is up", async () => {
    // n1, the master, runs no pipeline actors: killing it loses no message in flight, so what is
    // measured is the releaser's failover alone.
    // The shipped heartbeat (500 ms / 2000 ms): a failover of about 2 s, the master killed 3.5 s
    // before the first message is due.
    const { c, arrived } = await start({ nodes: 3, intervalMs: 500, timeoutMs: 2000, nodeExtra: (i) => (i === 0 ? { actors: none } : {}) });
    await c.waitStatus("n1 master", (s) => s.master?.node === "n1");
    const during: Sent[] = [];
    const after: Sent[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) during.push({ id: await submit(c, { deliverAt: t0 + 300 + 100 * i }), due: t0 + 300 + 100 * i, how: `due during the failover #${i}` });
    for (let i = 0; i < 10; i++) after.push({ id: await submit(c, { deliverAt: t0 + 3500 + 100 * i }), due: t0 + 3500 + 100 * i, how: `due after it #${i}` });
    const killedAt = performance.now();
    await c.kill("n1");
    const gained = (await waitFor(() => c.events.find((e) => e.type === "master.acquired" && e.node !== "n1"), { timeoutMs: 10_000, what: "a new master" }))!;
    const failoverMs = gained.receivedAt - killedAt;
    const lateAfter = await lateness(arrived, after, 15_000);
    const lateDuring = await lateness(arrived, during, 1000);
    const afterTakeover = during.map((s) => arrived.get(s.id)!.mono - gained.receivedAt);
    console.log(
      `scheduled delivery across a master failover (${Math.round(failoverMs)} ms, ${gained.node} took over): ` +
        `due after it: lateness ${summary(lateAfter)}; due during it: pushed ${summary(afterTakeover)} after the takeover`,
    );
    // Killed 3.5 s before they are due, with a failover of about 2 s: the bound holds as without a fault.
    expect(failoverMs).toBeLessThan(3000);
    expectOnTime(arrived, after, lateAfter);
    for (const [i, s] of during.entries()) {
      expect(lateDuring[i], s.how).toBeGreaterThanOrEqual(-EARLY_SLACK_MS);
      expect(afterTakeover[i], `${s.how}: pushed ${Math.round(afterTakeover[i]!)} ms after the new master took over`).toBeLessThanOrEqual(BOUND_MS);
      expect(arrived.get(s.id)!.count).toBe(1);
    }
  });

  it("across a nats-server restart: messages scheduled before and after it are pushed on time", async () => {
    const { c, arrived } = await start({ intervalMs: 200, timeoutMs: 2000 });
    const before = await scheduleOnEveryPath(c, 4000, 2, false);
    const restartedAt = performance.now();
    await c.nats.server.restart();
    const restartMs = performance.now() - restartedAt;
    await c.waitStatus("the node back with a master", (s) => allRunning(s) && s.master?.node === "n1", 15_000);
    const after = await scheduleOnEveryPath(c, 1500, 1, false);
    const late = await lateness(arrived, [...before, ...after], 20_000);
    console.log(`scheduled delivery across a nats-server restart (${Math.round(restartMs)} ms): lateness ${summary(late)}`);
    expectOnTime(arrived, [...before, ...after], late);
  });

  for (const skew of ["+5s", "-5s"]) {
    it(`a master whose wall clock is ${skew.slice(0, 1) === "+" ? "5 s ahead" : "5 s behind"} releases on time (server clock)`, async () => {
      const { c, arrived } = await start({ skew: { n1: skew } });
      const sent = await scheduleOnEveryPath(c, 1500, 2, false);
      const late = await lateness(arrived, sent, 20_000);
      console.log(`scheduled delivery, the only node ${skew} off: lateness ${summary(late)}`);
      expectOnTime(arrived, sent, late);
    });
  }
});
