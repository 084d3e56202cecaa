import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  findNatsServer,
  freePort,
  NatsServerMissingError,
  NatsServerStartError,
  startNatsServer,
} from "../runtime/nats/server.js";
import { LockHeldError } from "../runtime/lifecycle/index.js";
import { startTestNats, waitFor, type TestNats } from "./helpers/nats.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function testNats(): Promise<TestNats> {
  const nats = await startTestNats();
  cleanups.push(() => nats.stop());
  return nats;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function addStreamWithOneMessage(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const ack = await jetstream(nc).publish(`${stream}.one`, "hello");
    expect(ack.seq).toBe(1);
  } finally {
    await nc.close();
  }
}

async function readFirstMessage(url: string, stream: string): Promise<string | undefined> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const msg = await jsm.streams.getMessage(stream, { seq: 1 });
    return msg?.string();
  } finally {
    await nc.close();
  }
}

describe("nats-server child process", () => {
  it("starts on a free port and accepts a NATS connection", async () => {
    const nats = await testNats();
    expect(nats.port).not.toBe(4222);
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    const nc = await connect({ servers: nats.url });
    expect(nc.info?.jetstream).toBe(true);
    await nc.close();
  });

  it("runs JetStream: a published message is read back from its stream", async () => {
    const nats = await testNats();
    await addStreamWithOneMessage(nats.url, "HERALD_T1");
    expect(await readFirstMessage(nats.url, "HERALD_T1")).toBe("hello");
  });

  it("restart keeps the port and the JetStream data", async () => {
    const nats = await testNats();
    await addStreamWithOneMessage(nats.url, "HERALD_T2");
    const firstPid = nats.server.pid;

    await nats.server.restart();

    expect(nats.server.pid).not.toBe(firstPid);
    expect(isRunning(firstPid)).toBe(false);
    expect(nats.server.url).toBe(nats.url);
    expect(await readFirstMessage(nats.url, "HERALD_T2")).toBe("hello");
  });

  it("kill() ends the server at once and restart() brings it back with its data", async () => {
    const nats = await testNats();
    await addStreamWithOneMessage(nats.url, "HERALD_T3");
    const pid = nats.server.pid;

    await nats.server.kill();
    expect(await nats.server.exited).toBeNull();
    expect(isRunning(pid)).toBe(false);

    await nats.server.restart();
    expect(await readFirstMessage(nats.url, "HERALD_T3")).toBe("hello");
  });

  it("a client reconnects after a restart", async () => {
    const nats = await testNats();
    const nc = await connect({ servers: nats.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    cleanups.push(() => nc.close());
    await nats.server.restart();
    const reply = await waitFor(
      async () => {
        const sub = nc.subscribe("probe", { max: 1 });
        (async () => {
          for await (const m of sub) m.respond("pong");
        })().catch(() => {});
        try {
          return (await nc.request("probe", "", { timeout: 500 })).string();
        } finally {
          sub.unsubscribe();
        }
      },
      { timeoutMs: 10_000, what: "a request/reply round trip after restart" },
    );
    expect(reply).toBe("pong");
  });

  it("stop() leaves no process behind and settles exited", async () => {
    const nats = await startTestNats();
    const pid = nats.server.pid;
    expect(isRunning(pid)).toBe(true);

    await nats.stop();

    expect(() => process.kill(pid, 0)).toThrow();
    await expect(nats.server.exited).resolves.not.toBeUndefined();
    await nats.stop(); // idempotent
  });

  it("writes its output to logFile when asked", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "herald-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const logFile = path.join(dir, "logs", "nats.log");
    const server = await startNatsServer({ storeDir: path.join(dir, "store"), logFile, serverName: "herald-logged" });
    await server.stop();
    const log = await readFile(logFile, "utf8");
    expect(log).toContain("Server is ready");
    expect(log).toContain("herald-logged");
  });

  it("a taken port is refused before nats-server opens its store", async () => {
    const nats = await testNats();
    const dir = await mkdtemp(path.join(os.tmpdir(), "herald-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    const start = startNatsServer({ storeDir: dir, port: nats.port });

    await expect(start).rejects.toBeInstanceOf(NatsServerStartError);
    await expect(start).rejects.toThrow(`cannot start nats-server on 127.0.0.1:${nats.port}: address already in use (a nats-server named "`);
    expect(existsSync(path.join(dir, "jetstream"))).toBe(false);
  });

  it("a second server on a store dir in use is refused, naming the first; stop() frees it", async () => {
    const nats = await testNats();

    const second = startNatsServer({ storeDir: nats.storeDir, ownerRole: "second" });

    await expect(second).rejects.toBeInstanceOf(LockHeldError);
    await expect(second).rejects.toThrow(
      `the nats-server store dir ${nats.storeDir} is in use by node ${path.basename(process.argv[1] ?? "")} (pid ${process.pid}), ` +
        `with nats-server (pid ${nats.server.pid}): stop it first (kill ${process.pid}), or use another store dir`,
    );
    await nats.server.stop();
    const again = await startNatsServer({ storeDir: nats.storeDir });
    await again.stop();
  });

  it("a store dir lock whose processes are gone is taken over", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "herald-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = await startNatsServer({ storeDir: dir });
    const lock = await readFile(path.join(dir, "nats-server.lock"), "utf8");
    await first.kill();
    // As a SIGKILLed owner would leave it: the lock still names a process that is gone (and the
    // dead server), here this test's own pid with another start time.
    await writeFile(path.join(dir, "nats-server.lock"), lock.replace(/"startedAt":"[^"]*"/, '"startedAt":"linux:1"'));

    const second = await startNatsServer({ storeDir: dir });
    cleanups.push(() => second.stop());
    expect(second.pid).not.toBe(first.pid);
  });

  it("freePort returns a port that can be listened on", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(4222);
  });
});

describe("finding the nats-server binary", () => {
  const saved = process.env.NATS_SERVER_BIN;
  afterEach(() => {
    if (saved === undefined) delete process.env.NATS_SERVER_BIN;
    else process.env.NATS_SERVER_BIN = saved;
  });

  it("finds the installed binary", () => {
    delete process.env.NATS_SERVER_BIN;
    expect(findNatsServer()).toMatch(/nats-server(\.exe)?$/);
  });

  it("NATS_SERVER_BIN that is not executable is an error naming it, with the install hint", async () => {
    process.env.NATS_SERVER_BIN = "/nonexistent";
    expect(() => findNatsServer()).toThrow(NatsServerMissingError);
    expect(() => findNatsServer()).toThrow(/NATS_SERVER_BIN=\/nonexistent/);
    expect(() => findNatsServer()).toThrow(/sudo apt-get install nats-server/);
    await expect(startNatsServer({ storeDir: path.join(os.tmpdir(), "herald-unused") })).rejects.toThrow(
      NatsServerMissingError,
    );
  });

  it("the default message is one line with the install hint", () => {
    const err = new NatsServerMissingError();
    expect(err.name).toBe("NatsServerMissingError");
    expect(err.message).toBe(
      "nats-server not found: install it (Debian/Ubuntu: sudo apt-get install nats-server) or set NATS_SERVER_BIN",
    );
  });
});
