/**
 * The pipeline's CLI commands against a real nats-server: rules, pause/resume, dead letters,
 * publish and the status counts. The actors are not started: each test creates the bucket and
 * streams the cluster would, so what is checked is the CLI's contract with them.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, RetentionPolicy, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it, onTestFinished } from "vitest";
import { decode, encode } from "../runtime/codec/index.js";
import { type DeadLetter } from "../runtime/pipeline/streams.js";
import type { Envelope } from "../runtime/pipeline/types.js";
import { CLI, runCli } from "./helpers/cluster.js";
import { startTestNats } from "./helpers/nats.js";
import { HEADER_ENVELOPE, HEADER_ID } from "../runtime/names.js";

interface Env {
  nc: NatsConnection;
  jsm: JetStreamManager;
  file: string;
  dir: string;
  /** Runs `herald …` against this test's server and config. */
  herald(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** A nats-server, a connection and a config file for one test, all cleaned up after it. */
async function setup(extra: Record<string, unknown> = {}): Promise<Env> {
  const nats = await startTestNats();
  onTestFinished(() => nats.stop());
  const nc = await connect({ servers: nats.url });
  onTestFinished(() => nc.close());
  const dir = await mkdtemp(join(tmpdir(), "herald-cli-pipeline-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "cluster.config.json");
  const config = {
    cluster: "cli-pipeline",
    nats: { servers: [nats.url] },
    nodes: [{ name: "n1" }],
    topics: { demo: { channel: "nats" }, other: { channel: "nats" } },
    ...extra,
  };
  await writeFile(file, JSON.stringify(config));
  // NATS_URL emptied: the config, not the caller's environment, names the server.
  const herald = (...args: string[]) => runCli([...args, "-c", file], { env: { NATS_URL: "" } });
  return { nc, jsm: await jetstreamManager(nc), file, dir, herald };
}

const rulesBucket = (nc: NatsConnection) => new Kvm(nc).create("herald_rules", { history: 5 });

async function json(kv: KV, key: string): Promise<unknown> {
  const e = await kv.get(key);
  return e?.operation === "PUT" ? e.json() : undefined;
}

function envelope(id: string, topic = "demo"): Envelope {
  return { id, topic, to: "ada", data: { name: "Ada" }, createdAt: 1_700_000_000_000, source: "submit", attempts: 5 };
}

/** Seeds dead letters as the actors write them: msgpack on herald.dlq.<topic>, Herald-Id header. */
async function seedDeadLetters(env: Env, letters: DeadLetter[]): Promise<void> {
  await env.jsm.streams.add({ name: "HERALD_DLQ", subjects: ["herald.dlq.>"] });
  const js = jetstream(env.nc);
  for (const dl of letters) {
    const h = headers();
    h.set(HEADER_ID, dl.id);
    await js.publish(`herald.dlq.${dl.topic}`, encode(dl), { headers: h });
  }
}

const exhausted = (id: string, topic = "demo"): DeadLetter => ({
  id,
  topic,
  reason: "exhausted",
  error: `HTTP 503 from https://example.test/hook after 5 attempts; ${"the upstream said no. ".repeat(5)}`,
  attempts: 5,
  deadAt: Date.UTC(2025, 0, 2, 3, 4, 5),
  envelope: envelope(id, topic),
});

const invalid: DeadLetter = {
  id: "invalid:7",
  topic: "demo",
  reason: "invalid",
  error: "malformed JSON: Unexpected token",
  attempts: 0,
  deadAt: Date.UTC(2025, 0, 2, 3, 4, 6),
  raw: new TextEncoder().encode("{nope"),
  subject: "herald.in.demo",
};

describe("herald help", () => {
  it("lists the pipeline commands", async () => {
    const help = await runCli(["help"]);
    for (const cmd of ["publish TOPIC", "rules get", "rules set", "pause", "resume", "dlq list", "dlq replay", "dlq purge"]) {
      expect(help.stdout).toContain(`herald ${cmd}`);
    }
    expect(help.stdout).toMatch(/herald pause[^\n]*ingest\n\s+continues/);
  });
});

describe("herald rules", () => {
  it("set merges over the stored rule, validates, and get shows it", async () => {
    const env = await setup();
    const kv = await rulesBucket(env.nc);

    const fromConfig = await env.herald("rules", "get");
    expect(fromConfig.code).toBe(0);
    expect(fromConfig.stdout).toContain("from the config");

    const set = await env.herald("rules", "set", "--json", '{"primary":"lifo","maxCount":3}');
    expect(set.stderr).toBe("");
    expect(set.stdout).toBe("rules for default set: primary=lifo secondary=fifo maxCount=3 maxAgeMs=100\n");
    expect(await json(kv, "default")).toEqual({ primary: "lifo", secondary: "fifo", maxCount: 3, maxAgeMs: 100 });

    // A topic without a rule of its own starts from the default.
    const topic = await env.herald("rules", "set", "--topic", "demo", "--json", '{"secondary":"lifo","maxAgeMs":200}');
    expect(topic.stdout).toBe("rules for demo set: primary=lifo secondary=lifo maxCount=3 maxAgeMs=200\n");
    expect(await json(kv, "topic.demo")).toEqual({ primary: "lifo", secondary: "lifo", maxCount: 3, maxAgeMs: 200 });

    // null removes a field.
    const file = join(env.dir, "rule.json");
    await writeFile(file, '{"maxCount":null}');
    const removed = await env.herald("rules", "set", "--topic", "demo", "--file", file);
    expect(removed.stdout).toBe("rules for demo set: primary=lifo secondary=lifo maxCount=- maxAgeMs=200\n");

    const own = await env.herald("rules", "get", "--topic", "demo");
    expect(own.stdout).toContain("rules for topic demo (its own rule)");
    expect(own.stdout).toMatch(/secondary\s+lifo/);
    const fallback = await env.herald("rules", "get", "--topic", "other", "--json");
    expect(JSON.parse(fallback.stdout)).toEqual({ primary: "lifo", secondary: "fifo", maxCount: 3, maxAgeMs: 100 });
    expect(fallback.stderr).toContain("the default rule (the topic has none of its own)");
  });

  it("refuses an invalid rule with its reason and keeps the old one", async () => {
    const env = await setup();
    const kv = await rulesBucket(env.nc);
    await env.herald("rules", "set", "--json", '{"primary":"lifo"}');
    const before = (await kv.get("default"))!.revision;

    const cases: [string, string][] = [
      ['{"primary":"filo"}', 'rules.primary: must be one of "fifo", "lifo", "random"'],
      ['{"maxCount":0}', "rules.maxCount"],
      ['{"calendar":[{"timeZone":"Mars/Olympus","days":["sat"],"primary":"fifo"}]}', 'unknown time zone "Mars/Olympus"'],
    ];
    for (const [patch, reason] of cases) {
      const r = await env.herald("rules", "set", "--json", patch);
      expect(r.code, patch).toBe(1);
      expect(r.stderr, patch).toContain(reason);
      expect(r.stderr).toContain("nothing was changed");
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect((await kv.get("default"))!.revision).toBe(before);
    expect(await json(kv, "default")).toMatchObject({ primary: "lifo" });
  });

  it("usage errors name the flag or list the topics; a missing bucket is one line", async () => {
    const env = await setup();
    const notJson = await env.herald("rules", "set", "--json", "{primary:lifo}");
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain("--json must be a JSON object");
    const unknown = await env.herald("rules", "get", "--topic", "nope");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("(topics: demo, other)");
    const noAction = await env.herald("rules");
    expect(noAction.code).toBe(2);
    expect(noAction.stderr).toContain('"herald rules get", "herald rules set"');

    const noBucket = await env.herald("rules", "get");
    expect(noBucket.code).toBe(1);
    expect(noBucket.stderr.trim()).toBe("herald: no rules bucket herald_rules on this NATS: has the cluster been started? (herald start)");
  });
});

describe("herald pause / resume", () => {
  it("writes and deletes the pause keys", async () => {
    const env = await setup();
    const kv = await rulesBucket(env.nc);

    const all = await env.herald("pause");
    expect(all.stdout).toBe("retrieval paused for all topics\n");
    const value = (await json(kv, "pause.all")) as { paused: boolean; at: string };
    expect(value.paused).toBe(true);
    expect(new Date(value.at).toISOString()).toBe(value.at);

    expect((await env.herald("pause", "--topic", "demo")).stdout).toBe("retrieval paused for topic demo\n");
    expect(await json(kv, "pause.topic.demo")).toMatchObject({ paused: true });
    expect((await env.herald("rules", "get", "--topic", "demo")).stdout).toMatch(/retrieval\s+paused \(all topics, since /);

    const resumeTopic = await env.herald("resume", "--topic", "demo");
    expect(resumeTopic.stdout).toBe("retrieval resumed for topic demo\n");
    expect(resumeTopic.stderr).toContain("still paused: all topics");
    expect((await kv.get("pause.topic.demo"))?.operation).toBe("DEL");

    expect((await env.herald("resume")).stdout).toBe("retrieval resumed for all topics\n");
    expect((await kv.get("pause.all"))?.operation).toBe("DEL");
    expect((await env.herald("rules", "get")).stdout).toMatch(/retrieval\s+running/);
  });
});

describe("herald dlq", () => {
  it("lists dead letters oldest first, filters by topic, and limits", async () => {
    const env = await setup();
    await seedDeadLetters(env, [exhausted("01A"), invalid, exhausted("01B", "other"), exhausted("01C")]);

    const table = await env.herald("dlq", "list");
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TOPIC\s+REASON\s+ATTEMPTS\s+DEAD AT\s+ERROR$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["01A", "invalid:7", "01B", "01C"]);
    expect(lines[1]).toContain("2025-01-02T03:04:05Z");
    expect(lines[1]).toContain("…"); // the long error is clipped
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(160);

    const demo = JSON.parse((await env.herald("dlq", "list", "--topic", "demo", "--json")).stdout) as Record<string, unknown>[];
    expect(demo.map((d) => d.id)).toEqual(["01A", "invalid:7", "01C"]);
    expect(demo[1]).toEqual({ seq: 2, id: "invalid:7", topic: "demo", reason: "invalid", error: invalid.error, attempts: 0, deadAt: invalid.deadAt, bodySeq: null });

    const limited = await env.herald("dlq", "list", "--limit", "1");
    expect(limited.stdout.trimEnd().split("\n")).toHaveLength(2);
    expect(limited.stderr).toContain("showing the oldest 1 of 4 dead letters");

    expect((await env.herald("dlq", "list", "--topic", "nothing")).stdout).toBe("no dead letters for topic nothing\n");
  });

  it("on a terminal, replaying many letters shows one progress line, then the count; piped, a line each", async () => {
    const env = await setup();
    await env.jsm.streams.add({ name: "HERALD_QUEUE", subjects: ["herald.in.>"], retention: RetentionPolicy.Workqueue });
    const ids = Array.from({ length: 30 }, (_, i) => `01T${String(i).padStart(2, "0")}`);
    await seedDeadLetters(env, ids.map((id) => exhausted(id)));
    // util-linux `script` runs the command on a pseudo-terminal, as a user's shell would.
    const command = [process.execPath, CLI, "dlq", "replay", "--all", "-c", env.file].map((a) => `'${a}'`).join(" ");
    const tty = spawnSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8", env: { ...process.env, NATS_URL: "" } });
    expect(tty.status, tty.stdout + tty.stderr).toBe(0);
    expect(tty.stdout).toContain("replaying dead letters: ");
    expect(tty.stdout).toContain("replayed 30 of 30 dead letters");
    expect(tty.stdout).not.toContain(`replayed ${ids[0]}`);
    expect((await env.jsm.streams.info("HERALD_QUEUE")).state.messages).toBe(30);
  });

  it("replays a letter onto the queue with a fresh msg id, then removes it; an invalid one stays", async () => {
    const env = await setup();
    await env.jsm.streams.add({ name: "HERALD_QUEUE", subjects: ["herald.in.>"], retention: RetentionPolicy.Workqueue });
    await seedDeadLetters(env, [exhausted("01A"), invalid, exhausted("01B", "other")]);

    const r = await env.herald("dlq", "replay", "01A");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("replayed 01A\n");
    const queued = await env.jsm.streams.getMessage("HERALD_QUEUE", { seq: 1 });
    expect(queued?.subject).toBe("herald.in.demo");
    expect(queued?.header.get(HEADER_ENVELOPE)).toBe("1");
    expect(queued?.header.get("Nats-Msg-Id")).toBe("01A:replay:1");
    expect(decode(queued!.data)).toEqual({ ...envelope("01A"), attempts: 0 });
    expect(await env.jsm.streams.getMessage("HERALD_DLQ", { seq: 1 })).toBeNull();

    const refused = await env.herald("dlq", "replay", "invalid:7");
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      "cannot replay invalid:7: the input was never a valid message (reason invalid); see herald dlq list",
    );
    expect(await env.jsm.streams.getMessage("HERALD_DLQ", { seq: 2 })).not.toBeNull();

    const unknown = await env.herald("dlq", "replay", "01B", "01Z");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no dead letter with id 01Z");
    expect((await env.jsm.streams.info("HERALD_DLQ")).state.messages).toBe(2); // nothing replayed

    // --all replays what it can and still fails for the invalid one.
    const all = await env.herald("dlq", "replay", "--all");
    expect(all.code).toBe(1);
    expect(all.stdout).toBe("replayed 01B\n");
    expect(all.stderr).toContain("cannot replay invalid:7");
    expect((await env.jsm.streams.info("HERALD_QUEUE")).state.messages).toBe(2);
    expect((await env.jsm.streams.info("HERALD_DLQ")).state.messages).toBe(1);
  });

  it("purges one topic or everything", async () => {
    const env = await setup();
    await seedDeadLetters(env, [exhausted("01A"), exhausted("01B", "other"), exhausted("01C")]);
    expect((await env.herald("dlq", "purge", "--topic", "other")).stdout).toBe("purged 1 dead letter of topic other\n");
    expect((await env.herald("dlq", "purge")).stdout).toBe("purged 2 dead letters\n");
    expect((await env.jsm.streams.info("HERALD_DLQ")).state.messages).toBe(0);
    expect((await env.herald("dlq", "list")).stdout).toBe("no dead letters\n");
  });

  it("without the streams, says so in one line and keeps the letter", async () => {
    const env = await setup();
    const r = await env.herald("dlq", "list");
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("herald: no dead-letter stream HERALD_DLQ on this NATS: has the cluster been started? (herald start)");

    await seedDeadLetters(env, [exhausted("01A")]);
    const noQueue = await env.herald("dlq", "replay", "01A");
    expect(noQueue.code).toBe(1);
    expect(noQueue.stderr).toMatch(/^herald: cannot replay 01A: publishing to herald\.in\.demo failed \(.*\): is the cluster running\? \(herald status\)\n$/);
    expect((await env.jsm.streams.info("HERALD_DLQ")).state.messages).toBe(1);

    const neither = await env.herald("dlq", "replay");
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain("needs dead-letter ids (see herald dlq list) or --all");
  });
});

describe("herald publish", () => {
  it("with nobody serving ingest, is one line", async () => {
    const env = await setup();
    const r = await env.herald("publish", "demo", "--data", '{"name":"Ada"}');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("herald: no ingest actor answered on herald.submit: is the cluster running? (herald status)\n");
  });

  it("sends JSON to <prefix>.submit and prints the id it gets back", async () => {
    const env = await setup({ subjectPrefix: "acme" });
    const received: unknown[] = [];
    // A stand-in for the ingest actor: checks the CLI's request/reply contract, not ingest itself.
    const sub = env.nc.subscribe("acme.submit", {
      callback: (_err, msg) => {
        const body = JSON.parse(msg.string()) as { id?: string; data: { fail?: boolean } };
        received.push(body);
        if (body.data.fail) msg.respond(JSON.stringify({ ok: false, error: 'unknown topic "demo"' }));
        else msg.respond(encode({ ok: true, id: body.id ?? "01GENERATED", duplicate: body.id === "again" }));
      },
    });
    onTestFinished(() => sub.unsubscribe());
    await env.nc.flush();

    const r = await env.herald("publish", "demo", "--data", '{"name":"Ada"}', "--to", "ada@example.test");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("01GENERATED\n");
    expect(received[0]).toEqual({ topic: "demo", data: { name: "Ada" }, to: "ada@example.test" });

    const file = join(env.dir, "data.json");
    await writeFile(file, '{"n": 1}');
    const dup = await env.herald("publish", "demo", "--file", file, "--id", "again");
    expect(dup.stdout).toBe("again\n");
    expect(dup.stderr).toContain("again was already queued");
    expect(received[1]).toEqual({ topic: "demo", data: { n: 1 }, id: "again" });

    const empty = await env.herald("publish", "demo");
    expect(received[2]).toEqual({ topic: "demo", data: {} });
    expect(empty.code).toBe(0);

    const refused = await env.herald("publish", "demo", "--data", '{"fail":true}');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('herald: unknown topic "demo"\n');
  });

  it("refuses data that is not a JSON object, naming --data", async () => {
    const env = await setup();
    for (const data of ["[1,2]", "{name:1}", "null"]) {
      const r = await env.herald("publish", "demo", "--data", data);
      expect(r.code, data).toBe(2);
      expect(r.stderr, data).toMatch(/^herald: --data must be a JSON object: /);
    }
    const none = await env.herald("publish");
    expect(none.code).toBe(2);
  });
});

describe("herald status", () => {
  it("counts the queue, the exception queue and the dead letters", async () => {
    const env = await setup();
    await new Kvm(env.nc).create("herald_registry", { history: 1 });
    const zero = JSON.parse((await env.herald("status", "--json")).stdout) as Record<string, unknown>;
    expect(zero).toMatchObject({ queue: { pending: 0 }, exceptions: { retrying: 0, dead: 0 } });

    const workqueue = RetentionPolicy.Workqueue;
    await env.jsm.streams.add({ name: "HERALD_QUEUE", subjects: ["herald.in.>"], retention: workqueue });
    await env.jsm.streams.add({ name: "HERALD_EXCEPTIONS", subjects: ["herald.exc.>"], retention: workqueue });
    await seedDeadLetters(env, [exhausted("01A"), invalid, exhausted("01C")]);
    const js = jetstream(env.nc);
    for (const id of ["q1", "q2"]) await js.publish("herald.in.demo", encode(envelope(id)));
    await js.publish("herald.exc.demo", encode({ envelope: envelope("e1"), error: "503", attempts: 1 }));

    const r = await env.herald("status", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ queue: { pending: 2 }, exceptions: { retrying: 1, dead: 3 } });
    expect((await env.herald("status")).stdout).toContain("queue pending 2   exceptions retrying 1, dead 3");
  });
});
