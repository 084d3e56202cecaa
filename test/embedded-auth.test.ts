/**
 * The embedded nats-server with credentials: `herald start` writes the server's config itself
 * from `nats.auth` and `nats.embeddedUsers`, with each role's permissions (runtime/nats/embedded.ts).
 * The nodes log in, a publisher may publish and nothing more, and a client without credentials is
 * refused. The config file written holds the passwords, so it is private to its owner.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, PermissionViolationError } from "@nats-io/transport-node";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../runtime/nats/server.js";
import { CLI, runCli } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const NODE_PASS = "node-Secret-Pa55";
const PUB_PASS = "pub-Secret-Pa55";

describe("the embedded server with credentials", () => {
  it("herald start sets it up from nats.auth: nodes log in, a publisher may only publish, anonymous clients are refused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "herald-embedded-auth-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const port = await freePort();
    const file = join(dir, "cluster.config.json");
    await writeFile(
      file,
      JSON.stringify({
        cluster: "secured",
        nats: {
          embedded: true,
          port,
          storeDir: "store",
          auth: { user: "herald-node", pass: { env: "HERALD_TEST_NODE_PASS" } },
          embeddedUsers: [{ user: "svc", pass: PUB_PASS, role: "publisher" }],
        },
        heartbeat: { intervalMs: 200, timeoutMs: 1000 },
        nodes: [{ name: "n1", actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 } }],
        topics: { demo: { channel: "nats" } },
      }),
    );
    const env = { ...process.env, HERALD_TEST_NODE_PASS: NODE_PASS, HERALD_LOG: "info" };
    const launcher = spawn(process.execPath, [CLI, "start", "-c", file], { stdio: ["ignore", "pipe", "pipe"], env });
    let output = "";
    launcher.stdout.on("data", (d) => (output += d));
    launcher.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => launcher.on("exit", (code) => r(code)));
    cleanups.push(async () => {
      launcher.kill("SIGTERM");
      await waitFor(() => exited.then(() => true), { timeoutMs: 20_000, what: "the launcher to drain and exit" });
    });

    const url = `nats://127.0.0.1:${port}`;
    await waitFor(async () => (await runCli(["status", "--json", "-c", file], { env })).stdout.includes('"state": "alive"'), {
      timeoutMs: 30_000,
      what: "the node alive, logged in as herald-node",
    });
    const serverConfig = join(dir, "store.server.conf");
    expect((await stat(serverConfig)).mode & 0o777).toBe(0o600);
    expect(output).not.toContain(NODE_PASS);

    // Without credentials: refused.
    await expect(connect({ servers: url, timeout: 2000, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization/i);

    // The publisher: publishes (and the message is pushed), but cannot touch the registry.
    const watcher = await connect({ servers: url, user: "herald-node", pass: NODE_PASS });
    cleanups.push(() => watcher.close());
    const pushed = new Set<string>();
    watcher.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        pushed.add(m.json<{ id: string }>().id);
      },
    });
    await watcher.flush();
    const pub = await connect({ servers: url, user: "svc", pass: PUB_PASS });
    cleanups.push(() => pub.close());
    const violations: string[] = [];
    void (async () => {
      for await (const s of pub.status()) if (s.type === "error" && s.error instanceof PermissionViolationError) violations.push(s.error.message);
    })();
    await jetstream(pub).publish("herald.in.demo", JSON.stringify({ id: "from-svc", data: {} }));
    await waitFor(() => pushed.has("from-svc"), { timeoutMs: 10_000, what: "the publisher's message pushed" });
    await expect((async () => (await new Kvm(pub).open("herald_registry")).put("node.n1", "{}"))()).rejects.toThrow();
    await waitFor(() => violations.some((v) => v.includes("$KV.herald_registry")), { timeoutMs: 5000, what: "the registry refused to the publisher" });
  });
});
