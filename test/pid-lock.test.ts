/**
 * The lock file behind "one launcher per config" and "one server per store dir": who holds it
 * (pure judgement), and taking it, refusing it, waiting for orphans and taking over stale ones on
 * real files with real processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { judgeLock, LockHeldError, PidLock, probeProcess, type LockHolder, type LockRecord } from "../runtime/lifecycle/index.js";
import { waitFor } from "./helpers/nats.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function lockFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "herald-lock-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "test.lock");
}

/** A process that lives until the test ends it. */
function sleeper(): ChildProcess {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return child;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  return child.pid!;
}

function holder(pid: number, role: string): LockHolder {
  const probe = probeProcess(pid);
  return { pid, role, ...(probe.alive && probe.startedAt ? { startedAt: probe.startedAt } : {}) };
}

async function writeRecord(file: string, record: LockRecord): Promise<void> {
  await writeFile(file, JSON.stringify(record));
}

describe("judging a lock", () => {
  const owner: LockHolder = { pid: 10, role: "herald launcher" };
  const server: LockHolder = { pid: 11, role: "nats-server" };
  const record: LockRecord = { host: "h", holders: [owner, server] };

  it("no record is free", () => {
    expect(judgeLock(undefined, "h", () => true)).toEqual({ state: "free" });
  });

  it("a live owner holds it, with whichever of the others are alive", () => {
    expect(judgeLock(record, "h", (x) => x === owner)).toEqual({ state: "held", alive: [owner] });
    expect(judgeLock(record, "h", () => true)).toEqual({ state: "held", alive: [owner, server] });
  });

  it("a dead owner whose server still runs leaves it orphaned, not free", () => {
    expect(judgeLock(record, "h", (x) => x === server)).toEqual({ state: "orphaned", owner, alive: [server] });
  });

  it("when every process it names is gone it is stale, so free", () => {
    expect(judgeLock(record, "h", () => false)).toEqual({ state: "free" });
  });

  it("a lock of another host cannot be judged here and counts as held", () => {
    expect(judgeLock(record, "other", () => false)).toEqual({ state: "elsewhere", host: "h", owner });
  });
});

describe("taking a lock", () => {
  it("is refused while its holder lives, naming it; free again once released", async () => {
    const file = await lockFile();
    const lock = await PidLock.acquire(file, { resource: "the thing", role: "first" });
    const second = PidLock.acquire(file, { resource: "the thing", role: "second", otherwise: "use another thing" });
    await expect(second).rejects.toBeInstanceOf(LockHeldError);
    await expect(second).rejects.toThrow(`the thing is in use by first (pid ${process.pid}): stop it first (kill ${process.pid}), or use another thing`);
    lock.release();
    expect(existsSync(file)).toBe(false);
    (await PidLock.acquire(file, { resource: "the thing", role: "second" })).release();
  });

  it("names the processes added to it, and drops those that ended", async () => {
    const file = await lockFile();
    const lock = await PidLock.acquire(file, { resource: "r", role: "owner" });
    cleanups.push(() => lock.release());
    const a = sleeper();
    lock.add(a.pid!, "child a");
    const gone = await deadPid();
    lock.add(gone, "child b");
    const b = sleeper();
    lock.add(b.pid!, "child c");
    const record = JSON.parse(await readFile(file, "utf8")) as LockRecord;
    expect(record.holders.map((h) => h.role)).toEqual(["owner", "child a", "child c"]);
  });

  it("takes over a stale lock silently", async () => {
    const file = await lockFile();
    await writeRecord(file, { host: hostname(), holders: [{ pid: await deadPid(), role: "old launcher" }] });
    const lock = await PidLock.acquire(file, { resource: "r", role: "new" });
    const record = JSON.parse(await readFile(file, "utf8")) as LockRecord;
    expect(record.holders).toEqual([expect.objectContaining({ pid: process.pid, role: "new" })]);
    lock.release();
  });

  it("a pid now used by another process does not hold it (the start time differs)", async () => {
    const file = await lockFile();
    await writeRecord(file, { host: hostname(), holders: [{ pid: process.pid, role: "old", startedAt: "linux:1" }] });
    (await PidLock.acquire(file, { resource: "r", role: "new" })).release();
  });

  it("an unreadable lock file is taken over", async () => {
    const file = await lockFile();
    await writeFile(file, "{ not json");
    (await PidLock.acquire(file, { resource: "r", role: "new" })).release();
  });

  it("orphans of a dead owner are named in the refusal", async () => {
    const file = await lockFile();
    const orphan = sleeper();
    const dead = await deadPid();
    await writeRecord(file, { host: hostname(), holders: [{ pid: dead, role: "herald launcher" }, holder(orphan.pid!, "node n1")] });
    await expect(PidLock.acquire(file, { resource: "r", role: "new" })).rejects.toThrow(
      `r is still in use by node n1 (pid ${orphan.pid}), left by herald launcher (pid ${dead}), which is gone: stop them (kill ${orphan.pid})`,
    );
  });

  it("with orphanWaitMs, waits for the orphans to end, then takes it", async () => {
    const file = await lockFile();
    const orphan = sleeper();
    await writeRecord(file, { host: hostname(), holders: [{ pid: await deadPid(), role: "herald launcher" }, holder(orphan.pid!, "node n1")] });
    let waitedFor: readonly LockHolder[] = [];
    const taking = PidLock.acquire(file, { resource: "r", role: "new", orphanWaitMs: 20_000, onWait: (alive) => (waitedFor = alive) });
    await waitFor(() => waitedFor.length > 0, { timeoutMs: 5000, what: "the wait for the orphan to begin" });
    expect(waitedFor.map((h) => h.pid)).toEqual([orphan.pid]);
    orphan.kill("SIGKILL");
    const lock = await taking;
    expect(lock.released).toBe(false);
    lock.release();
  });

  it("a lock taken on another host is refused with what to do", async () => {
    const file = await lockFile();
    await writeRecord(file, { host: "elsewhere.example", holders: [{ pid: 1, role: "herald launcher" }] });
    await expect(PidLock.acquire(file, { resource: "r", role: "new" })).rejects.toThrow(
      `r is in use by herald launcher (pid 1) on host elsewhere.example: stop it there, or delete ${file} if nothing runs there any more`,
    );
  });
});
