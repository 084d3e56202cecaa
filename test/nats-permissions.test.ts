/**
 * Least privilege, against a real nats-server running the roles of runtime/nats/permissions.ts
 * (the text shipped in deploy/nats/): nodes log in as the node role, the test watches as an
 * operator, and a publisher credential may publish and submit messages — and nothing else. It
 * cannot stop a node, change rules, read messages or dead letters, reach the nodes' inbox, or have
 * a pusher sign a payload of its own.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, encode } from "../runtime/codec/index.js";
import { authorizationBlock, shippedPermissionsConfig } from "../runtime/nats/permissions.js";
import { PERMISSIONS_FILE } from "../runtime/nats/write-permissions.js";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

const PASS = { node: "node-Pa55word-1", publisher: "pub-Pa55word-22", operator: "op-Pa55word-333" };

let cluster: TestCluster;
let publisher: NatsConnection;
let hook: Server;
let hookHits = 0;
const violations: string[] = [];
const pushed = new Set<string>();

describe("NATS roles", () => {
  beforeAll(async () => {
    hook = createServer((req, res) => {
      hookHits++;
      req.resume();
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      natsConfig: authorizationBlock([
        { user: "node", password: PASS.node, role: "node" },
        { user: "publisher", password: PASS.publisher, role: "publisher" },
        { user: "operator", password: PASS.operator, role: "operator" },
      ]),
      harness: { user: "operator", pass: PASS.operator },
      extra: {
        topics: { demo: { channel: "nats" }, hook: { channel: "webhook", url, secret: "whsec_" + Buffer.from("a-secret-of-32-bytes-for-signing").toString("base64") } },
      },
    });
    // The harness wrote nats: { servers } over the extra: put the login back.
    cluster.config.nats = { ...cluster.config.nats, auth: { user: "node", pass: PASS.node } };
    await writeFile(cluster.configFile, JSON.stringify(cluster.config, null, 2));
    cluster.nc.subscribe("herald.out.demo", {
      callback: (_e, m) => {
        pushed.add(m.json<{ id: string }>().id);
      },
    });
    cluster.startAll();
    await cluster.waitStatus("the node running as the node role", allRunning, 30_000);
    publisher = await connect({ servers: cluster.nats.url, user: "publisher", pass: PASS.publisher });
    void (async () => {
      for await (const s of publisher.status()) if (s.type === "error" && s.error instanceof PermissionViolationError) violations.push(s.error.message);
    })();
  });

  afterAll(async () => {
    await publisher?.close();
    await cluster?.stop();
    await new Promise<void>((r) => hook?.close(() => r()));
  });

  /** Runs `attempt` as the publisher; it must fail, and the server must report a permission violation naming `subject`. */
  async function refused(subject: string, attempt: () => Promise<unknown>): Promise<void> {
    const before = violations.length;
    await expect(attempt()).rejects.toThrow();
    await waitFor(() => violations.slice(before).some((v) => v.includes(subject)), { timeoutMs: 5000, what: `a permission violation for ${subject}` });
  }

  it("the shipped deploy/nats/herald-permissions.conf is the generated one (npm run permissions)", async () => {
    expect(await readFile(PERMISSIONS_FILE, "utf8")).toBe(shippedPermissionsConfig());
  });

  it("a publisher may publish on herald.in.<topic> with a JetStream ack and request herald.submit", async () => {
    await jetstream(publisher).publish("herald.in.demo", JSON.stringify({ id: "by-publisher", data: {} }));
    const reply = decode<{ ok: boolean; id: string }>((await publisher.request("herald.submit", encode({ topic: "demo", data: {} }), { timeout: 5000 })).data);
    expect(reply.ok).toBe(true);
    await waitFor(() => pushed.has("by-publisher") && pushed.has(reply.id), { timeoutMs: 10_000, what: "both messages pushed" });
  });

  it("a publisher cannot stop a node: the registry is out of its reach", async () => {
    await refused("$KV.herald_registry", async () => {
      const kv = await new Kvm(publisher).open("herald_registry");
      await kv.put("node.n1", JSON.stringify({ isStopServer: true }));
    });
    const s = await cluster.status();
    expect(s.nodes[0]).toMatchObject({ state: "alive", isStopServer: false });
  });

  it("a publisher cannot change the rules or pause a topic", async () => {
    await refused("$KV.herald_rules", async () => {
      const kv = await new Kvm(publisher).open("herald_rules");
      await kv.put("pause.all", "{}");
    });
    const r = await cluster.cli(["rules", "get", "--json"], {});
    expect(JSON.parse(r.stdout)).toMatchObject({ primary: "fifo" });
  });

  it("a publisher cannot read pushed messages, the queue, dead letters, or the nodes' inbox", async () => {
    for (const subject of ["herald.out.demo", "_INBOX_herald.>"]) {
      const before = violations.length;
      publisher.subscribe(subject);
      await waitFor(() => violations.slice(before).some((v) => v.includes(subject)), { timeoutMs: 5000, what: `the subscribe to ${subject} refused` });
    }
    await refused("$JS.API", async () => (await jetstreamManager(publisher, { timeout: 2000 })).streams.info("HERALD_DLQ"));
  });

  it("a publisher cannot have a pusher sign and send a payload of its own", async () => {
    const forged = encode({ topic: "hook", message: { id: "forged", topic: "hook", createdAt: 0, rendered: {}, data: { evil: true } } });
    await refused("herald.work.push", () => publisher.request("herald.work.push", forged, { timeout: 2000 }));
    await refused("herald.work.process", () => publisher.request("herald.work.process", forged, { timeout: 2000 }));
    expect(hookHits).toBe(0);
  });

  it("an operator runs the CLI (status, rules, dead letters) but cannot use the work subjects either", async () => {
    const env = { NATS_USER: "operator", NATS_PASSWORD: PASS.operator };
    expect((await cluster.cli(["status", "--json"], env)).code).toBe(0);
    expect((await cluster.cli(["rules", "set", "--json", '{"maxCount":5}'], env)).code).toBe(0);
    expect((await cluster.cli(["dlq", "list"], env)).code).toBe(0);
    const operatorViolations: string[] = [];
    const op = await connect({ servers: cluster.nats.url, user: "operator", pass: PASS.operator });
    void (async () => {
      for await (const s of op.status()) if (s.type === "error") operatorViolations.push(String(s.error));
    })();
    await expect(op.request("herald.work.push", encode({}), { timeout: 2000 })).rejects.toThrow();
    await waitFor(() => operatorViolations.some((v) => v.includes("herald.work.push")), { timeoutMs: 5000, what: "the operator refused on herald.work.push" });
    await op.close();
    expect(hookHits).toBe(0);
  });
});
