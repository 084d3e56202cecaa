/**
 * The `herald` command as users run it: validation before start, the launcher with an embedded
 * nats-server, clean shutdown, and one-line errors.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { gatherStatus } from "../runtime/supervisor/cluster-status.js";
import { freePort } from "../runtime/nats/server.js";
import { CLI, runCli } from "./helpers/cluster.js";
import { startTestNats, waitFor } from "./helpers/nats.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempConfig(config: unknown): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), "herald-cli-"));
  dirs.push(dir);
  const file = join(dir, "cluster.config.json");
  await writeFile(file, JSON.stringify(config, null, 2));
  return { dir, file };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const embedded = (port: number, nodes: object[]) => ({
  cluster: "cli",
  nats: { embedded: true, port, storeDir: "store" },
  heartbeat: { intervalMs: 200, timeoutMs: 1000 },
  supervisor: { drainTimeoutMs: 3000 },
  nodes,
});

describe("herald CLI", () => {
  it("refuses a config with errors before starting anything, naming every path", async () => {
    const port = await freePort();
    const { dir, file } = await tempConfig(
      embedded(port, [
        { name: "n1", actors: { processor: 1 } },
        { name: "n2", actors: { processor: -1 } },
        { name: "n1" },
      ]),
    );
    const r = await runCli(["start", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("nodes[1].actors.processor");
    expect(r.stderr).toContain('duplicate node name "n1"');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    // Nothing was started: no server on the port, no store dir.
    expect(await portOpen(port)).toBe(false);
    expect(existsSync(join(dir, "store"))).toBe(false);
  });

  it("a missing config file and an unknown node are one clear line each", async () => {
    const missing = await runCli(["status", "-c", "/nonexistent/cluster.config.json"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^herald: cannot read config file .*not found/);
    const { file } = await tempConfig(embedded(await freePort(), [{ name: "n1" }]));
    const unknown = await runCli(["start", "-c", file, "--node", "n9"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toBe(`herald: no node named "n9" in ${file} (nodes: n1)`);
  });

  it("usage errors exit 2 with a hint; help lists the commands", async () => {
    const bad = await runCli(["frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
    const flag = await runCli(["status", "--bogus"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("--bogus");
    const help = await runCli(["help"]);
    expect(help.code).toBe(0);
    for (const cmd of ["start", "status", "stop", "fault crash-actor"]) expect(help.stdout).toContain(`herald ${cmd}`);
  });

  it("the README's CLI section is exactly what herald help prints", async () => {
    const help = (await runCli(["help"])).stdout;
    const usage = help.slice(help.indexOf("Usage:\n") + 7, help.indexOf("\nOptions:")).trimEnd();
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const block = /## CLI\n\n```\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block, "README has a ## CLI code block").toBeDefined();
    expect(block).toBe(usage.split("\n").map((l) => l.replace(/^  /, "")).join("\n"));
  });

  it("a cluster that is not running gives one line, not a hang", async () => {
    const { file } = await tempConfig(embedded(await freePort(), [{ name: "n1" }]));
    const r = await runCli(["status", "-c", file], { timeoutMs: 15_000 });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^herald: cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ .*is the cluster running\?/);
  });

  it("a node still waiting for NATS stops at once on SIGTERM", async () => {
    const port = await freePort();
    const { file } = await tempConfig({ cluster: "cli", nats: { servers: [`nats://127.0.0.1:${port}`] }, nodes: [{ name: "n1" }] });
    const node = spawn(process.execPath, [CLI, "start", "-c", file, "--node", "n1"], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    node.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => node.on("exit", (code) => r(code)));
    await waitFor(() => output.includes("starting"), { timeoutMs: 10_000, what: "the node to start" });
    node.kill("SIGTERM");
    const code = await waitFor(() => exited.then((c) => ({ c })), { timeoutMs: 5000, what: "the node to exit" }).finally(() => {
      if (node.exitCode === null) node.kill("SIGKILL");
    });
    expect(code.c).toBe(0);
  });

  it("herald start --node --server URL connects there instead of the config's servers; credentials in it are refused", async () => {
    const nats = await startTestNats();
    try {
      const { file } = await tempConfig({ cluster: "cli", nats: { servers: [`nats://127.0.0.1:${await freePort()}`] }, nodes: [{ name: "n1" }] });
      const refused = await runCli(["start", "-c", file, "--node", "n1", "--server", nats.url.replace("nats://", "nats://u:hunter2@")]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("put them in nats.auth");
      expect(refused.stderr).not.toContain("hunter2");
      const node = spawn(process.execPath, [CLI, "start", "-c", file, "--node", "n1", "--server", nats.url], { stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<number | null>((r) => node.on("exit", (code) => r(code)));
      const nc = await connect({ servers: nats.url });
      try {
        await waitFor(async () => (await gatherStatus(nc, { cluster: "cli", subjectPrefix: "herald", nodes: [{ name: "n1" }], heartbeat: { intervalMs: 500, timeoutMs: 2000 } }).catch(() => undefined))?.nodes[0]?.state === "alive", {
          timeoutMs: 20_000,
          what: "n1 alive on the --server NATS",
        });
      } finally {
        await nc.close();
        node.kill("SIGTERM");
        await exited;
      }
    } finally {
      await nats.stop();
    }
  });

  it("a missing nats-server binary is one line saying how to install it", async () => {
    const { file } = await tempConfig(embedded(await freePort(), [{ name: "n1" }]));
    const r = await runCli(["start", "-c", file], { env: { NATS_SERVER_BIN: "/nonexistent/nats-server" } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("apt-get install nats-server");
  });

  it("herald start runs the embedded server and every node; SIGTERM drains them and exits 0", async () => {
    const port = await freePort();
    const { dir, file } = await tempConfig(
      embedded(port, [
        { name: "a", actors: { collector: 1, subqueue: 0, processor: 1, pusher: 0 } },
        { name: "b", actors: { collector: 1, subqueue: 0, processor: 1, pusher: 0 } },
      ]),
    );
    const launcher = spawn(process.execPath, [CLI, "start", "-c", file], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    launcher.stdout.on("data", (d) => (output += d));
    launcher.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => launcher.on("exit", (code) => r(code)));
    try {
      await waitFor(() => portOpen(port), { timeoutMs: 15_000, what: "the embedded nats-server" });
      const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
      try {
        const cfg = { cluster: "cli", subjectPrefix: "herald", nodes: [{ name: "a" }, { name: "b" }], heartbeat: { intervalMs: 200, timeoutMs: 1000 } };
        await waitFor(
          async () => {
            const s = await gatherStatus(nc, cfg).catch(() => undefined);
            return s && s.nodes.every((n) => n.state === "alive") && s.master?.node === "a";
          },
          { timeoutMs: 20_000, what: "both nodes alive, a master" },
        );
      } finally {
        await nc.close();
      }
      expect(existsSync(join(dir, "store", "jetstream"))).toBe(true);
      launcher.kill("SIGTERM");
      const code = await waitFor(() => exited.then((c) => ({ c })), { timeoutMs: 20_000, what: `the launcher to exit; its output:\n${output}` }).catch((err) => {
        throw new Error(`${(err as Error).message}\n--- output ---\n${output}`);
      });
      expect(code.c).toBe(0);
      expect(output).toMatch(/node a exited/);
      expect(output).toMatch(/node b exited/);
      expect(await portOpen(port)).toBe(false);
    } finally {
      if (launcher.exitCode === null) launcher.kill("SIGKILL");
    }
  });
});
