import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  ACTOR_KINDS,
  ConfigError,
  RulesError,
  configJsonSchema,
  loadConfig,
  parseConfig,
  type HeraldConfig,
} from "../runtime/config/index.js";
import { parseRules } from "../runtime/rules/schema.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const exampleFile = path.join(root, "cluster.config.json");

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "herald-config-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const minimal = () => ({ cluster: "c1", nats: { servers: ["nats://127.0.0.1:4222"] }, nodes: [{ name: "a" }] });

/** A valid config with three nodes, to break one key at a time. */
const three = (): Record<string, any> => ({
  cluster: "c1",
  nats: { embedded: true },
  nodes: [{ name: "n1" }, { name: "n2" }, { name: "n3" }],
});

/** Parses `input`, expecting a ConfigError; returns it. */
function rejects(input: unknown): ConfigError {
  try {
    parseConfig(input, tmp);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError, but the config was accepted");
}

/** Asserts the error has exactly this issue path with a message containing `reason`. */
function expectIssue(err: ConfigError, issuePath: string, reason: string): void {
  const messages = err.issues.filter((i) => i.path === issuePath).map((i) => i.message);
  expect(messages, `issues at ${issuePath} in:\n${err.message}`).toEqual(expect.arrayContaining([expect.stringContaining(reason)]));
  expect(err.message).toContain(`${issuePath}: `);
}

describe("the shipped cluster.config.json", () => {
  test("loads with four nodes, n1 master, embedded NATS on 4333 and the demo and inbox topics", async () => {
    const { config, file, dir } = await loadConfig(exampleFile);
    expect(file).toBe(exampleFile);
    expect(dir).toBe(root);
    expect(config.cluster).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(config.nats).toEqual({
      embedded: true,
      host: "127.0.0.1",
      port: 4333,
      storeDir: path.join(root, ".herald", "nats"),
      servers: ["nats://127.0.0.1:4333"],
      replicas: 1,
    });
    expect(config.heartbeat).toEqual({ intervalMs: 500, timeoutMs: 2000 });
    expect(config.master.preset).toBe("n1");
    expect(config.nodes.map((n) => n.name)).toEqual(["n1", "n2", "n3", "n4"]);
    expect(config.nodes.map((n) => n.http?.port)).toEqual([8780, 8781, 8782, 8783]);
    for (const node of config.nodes) expect(node.actors).toEqual({ ingest: 1, collector: 1, subqueue: 1, processor: 1, pusher: 1 });
    expect(config.faultInjection).toBe(false);
    expect(config.rules).toEqual({ primary: "fifo", secondary: "fifo", maxCount: 100, maxAgeMs: 100 });
    expect(config.topics).toEqual({
      demo: { channel: "nats", template: { title: "Hello {{name}}", body: "Welcome, {{name}}." } },
      inbox: { channel: "sse", retainMs: 3_600_000, retainPerRecipient: 1000, template: { title: "{{title}}" } },
    });
    expect(config).not.toHaveProperty("$schema");
  });
});

describe("defaults", () => {
  test("a minimal config gets every default", () => {
    const config: HeraldConfig = parseConfig(minimal(), tmp);
    expect(config).toEqual({
      cluster: "c1",
      subjectPrefix: "herald",
      nats: {
        embedded: false,
        host: "127.0.0.1",
        port: 4333,
        storeDir: path.join(tmp, ".herald", "nats"),
        servers: ["nats://127.0.0.1:4222"],
        replicas: 1,
      },
      heartbeat: { intervalMs: 500, timeoutMs: 2000 },
      master: { preset: "a" },
      supervisor: {
        pingIntervalMs: 1000,
        pingTimeoutMs: 2000,
        drainTimeoutMs: 10_000,
        restart: { initialDelayMs: 0, maxDelayMs: 5000, intensity: 10, periodMs: 60_000 },
      },
      http: { host: "127.0.0.1", maxBodyBytes: 1_048_576, sseHeartbeatMs: 15_000, sseMaxClients: 10_000, corsOrigins: [] },
      limits: { maxPayloadBytes: 262_144, maxDepth: 32, maxValues: 100_000, maxKeys: 10_000, maxStringBytes: 262_144 },
      pipeline: {
        maxInFlight: 64,
        maxHeld: 1000,
        maxDeliveries: 10,
        ackWaitMs: 10_000,
        duplicateWindowMs: 120_000,
        retry: { backoffMs: [1000, 5000, 30_000, 120_000, 600_000], maxAttempts: 6 },
        deadLetters: { maxAge: 0, maxBytes: 0 },
      },
      nodes: [{ name: "a", actors: { ingest: 1, collector: 1, subqueue: 1, processor: 1, pusher: 1 } }],
      faultInjection: false,
      rules: { primary: "fifo", secondary: "fifo", maxCount: 100, maxAgeMs: 100 },
      topics: {},
      collectors: [],
    });
    expect(Object.keys(config.nodes[0]!.actors)).toEqual([...ACTOR_KINDS]);
  });

  test("embedded NATS defaults servers to its own host and port", () => {
    const config = parseConfig({ cluster: "c", nats: { embedded: true, host: "0.0.0.0", port: 4999 }, nodes: [{ name: "a" }] }, tmp);
    expect(config.nats.servers).toEqual(["nats://0.0.0.0:4999"]);
  });

  test("partial actor counts keep the other defaults; a webhook topic gets its timeout", () => {
    const nodes = [{ name: "a", actors: { processor: 4, collector: 0 } }];
    const config = parseConfig({ ...minimal(), nodes, topics: { hook: { channel: "webhook", url: "https://example.com/h" } } }, tmp);
    expect(config.nodes[0]!.actors).toEqual({ ingest: 1, collector: 0, subqueue: 1, processor: 4, pusher: 1 });
    expect(config.topics.hook).toEqual({ channel: "webhook", url: "https://example.com/h", timeoutMs: 5000 });
  });
});

describe("errors name the path and the reason", () => {
  test("an actor count below zero", () => {
    const input = three();
    input.nodes[2].actors = { processor: -1 };
    const err = rejects(input);
    expectIssue(err, "nodes[2].actors.processor", "must be an integer ≥ 0");
    expect(err.message).toContain("nodes[2].actors.processor: must be an integer ≥ 0");
    expect(err.issues).toHaveLength(1);
  });

  test("wrong types", () => {
    const err = rejects({ ...three(), cluster: 7, faultInjection: "yes", nodes: [{ name: "a", actors: { pusher: 1.5 } }] });
    expectIssue(err, "cluster", "must be a string");
    expectIssue(err, "faultInjection", "must be a boolean");
    expectIssue(err, "nodes[0].actors.pusher", "must be an integer");
  });

  test("a missing required key", () => {
    const err = rejects({ nats: { embedded: true }, nodes: [{ name: "a" }] });
    expectIssue(err, "cluster", "required");
  });

  test("unknown keys are errors, with a suggestion for typos", () => {
    const input = three();
    input.nodes[1].actors = { procesor: 2 };
    input.heartbaet = {};
    const err = rejects(input);
    expectIssue(err, "nodes[1].actors", 'unknown key "procesor"');
    expectIssue(err, "nodes[1].actors", 'did you mean "processor"');
    expectIssue(err, "(root)", 'unknown key "heartbaet"');
  });

  test("several problems are reported at once", () => {
    const input = three();
    input.nodes[2].actors = { processor: -1 };
    input.nodes[0].name = "n2";
    input.heartbeat = { intervalMs: 500, timeoutMs: 900 };
    input.master = { preset: "nope" };
    input.topics = { demo: { channel: "nats", subject: "has space" } };
    // A wrong type makes zod skip refinements by default; the cross-field checks must still run.
    input.faultInjection = "yes";
    input.nodes[1].actors = { pusher: "2" };
    const err = rejects(input);
    expect(err.issues.map((i) => i.path).sort()).toEqual(
      [
        "faultInjection",
        "heartbeat.timeoutMs",
        "master.preset",
        "nodes[1].actors.pusher",
        "nodes[1].name",
        "nodes[2].actors.processor",
        "topics.demo.subject",
      ].sort(),
    );
    expect(err.message).toMatch(/^invalid cluster config \(7 problems\):\n/);
  });

  test("a preset master that is not a node", () => {
    const err = rejects({ ...three(), master: { preset: "n9" } });
    expectIssue(err, "master.preset", 'no node named "n9" in nodes');
  });

  test("duplicate node names and HTTP ports", () => {
    const input = three();
    input.nodes = [
      { name: "n1", http: { port: 8780 } },
      { name: "n2", http: { port: 8780 } },
      { name: "n2" },
    ];
    const err = rejects(input);
    expectIssue(err, "nodes[2].name", 'duplicate node name "n2"');
    expectIssue(err, "nodes[1].http.port", "port 8780 is already used by nodes[0]");
  });

  test("a node HTTP port equal to the embedded NATS port", () => {
    const input = three();
    input.nodes[0].http = { port: 4333 };
    expectIssue(rejects(input), "nodes[0].http.port", "nats.port");
  });

  test("heartbeat timeout shorter than two intervals", () => {
    // The default timeoutMs (2000) is checked too: it is too short for a 1500 ms interval.
    const err = rejects({ ...three(), heartbeat: { intervalMs: 1500 } });
    expectIssue(err, "heartbeat.timeoutMs", "must be ≥ 2 × heartbeat.intervalMs = 3000 (got 2000)");
    expect(parseConfig({ ...three(), heartbeat: { intervalMs: 1000 } }, tmp).heartbeat).toEqual({ intervalMs: 1000, timeoutMs: 2000 });
  });

  test("external NATS without servers", () => {
    const err = rejects({ cluster: "c", nodes: [{ name: "a" }] });
    expectIssue(err, "nats.servers", "required when nats.embedded is false");
    expectIssue(rejects({ ...minimal(), nats: { servers: ["http://x:1"] } }), "nats.servers[0]", "nats://HOST:PORT");
    expectIssue(rejects({ ...minimal(), nats: { ...minimal().nats, replicas: 2 } }), "nats.replicas", "1, 3 or 5");
  });

  test("nats.auth and credentials: one way to log in, URL credentials refused, secrets never repeated", () => {
    const secret = "Url-Pa55word-not-to-show";
    const inUrl = rejects({ ...minimal(), nats: { servers: [`nats://herald:${secret}@127.0.0.1:4222`] } });
    expectIssue(inUrl, "nats.servers[0]", "put them in nats.auth");
    expect(inUrl.message).not.toContain(secret);
    const two = rejects({ ...minimal(), nats: { ...minimal().nats, auth: { token: secret, credsFile: "x.creds" } } });
    expectIssue(two, "nats.auth", "exactly one way to log in");
    expect(two.message).not.toContain(secret);
    expectIssue(rejects({ ...minimal(), nats: { ...minimal().nats, auth: { user: "herald" } } }), "nats.auth.pass", "user and pass go together");
    const badPass = rejects({ ...minimal(), nats: { ...minimal().nats, auth: { user: "herald", pass: 42 } } });
    expectIssue(badPass, "nats.auth.pass", '{ "env": "VARIABLE" }');
    expect(badPass.message).not.toContain("42");
    expectIssue(rejects({ ...minimal(), nats: { ...minimal().nats, tls: { certFile: "c.pem" } } }), "nats.tls.keyFile", "go together");
    expectIssue(rejects({ ...minimal(), nats: { ...minimal().nats, embeddedUsers: [{ user: "p", pass: "x", role: "publisher" }] } }), "nats.embeddedUsers", "only for the embedded server");
    const ok = parseConfig({ ...minimal(), nats: { ...minimal().nats, auth: { user: "herald", pass: { env: "P" } }, tls: { caFile: "ca.pem" } } }, "/etc/herald");
    expect(ok.nats.auth).toMatchObject({ user: "herald", pass: { env: "P" } });
    expect(ok.nats.tls?.caFile).toBe("/etc/herald/ca.pem");
  });

  test("empty nodes and bad names", () => {
    expectIssue(rejects({ ...minimal(), nodes: [] }), "nodes", "must not be empty");
    expectIssue(rejects({ ...minimal(), nodes: [{ name: "a b" }] }), "nodes[0].name", 'letters, digits, "_" or "-"');
    expectIssue(rejects({ ...minimal(), topics: { "a b": { channel: "nats" } } }), 'topics["a b"]', "invalid name");
  });

  test("bad rules: scheme, no limit, time zone, time, dates, load", () => {
    const err = rejects({
      ...minimal(),
      rules: {
        primary: "filo",
        secondary: "fifo",
        calendar: [
          { timeZone: "Mars/Olympus", days: ["mon"], primary: "lifo" },
          { time: { from: "25:00", to: "08:00" }, maxCount: 5 },
          { dates: [{ from: "2025-03-02", to: "2025-03-01" }, { from: "2025-02-30", to: "2025-03-01" }], days: [] },
        ],
        load: [{ windowMs: 10, thresholdPerSec: 0, secondary: "random" }],
      },
    });
    expectIssue(err, "rules.primary", 'must be one of "fifo", "lifo", "random" (got "filo")');
    expectIssue(err, "rules", "must set maxCount, maxAgeMs or both");
    expectIssue(err, "rules.calendar[0].timeZone", 'unknown time zone "Mars/Olympus"');
    expectIssue(err, "rules.calendar[1].time.from", "HH:MM");
    expectIssue(err, "rules.calendar[2].dates[0].to", "must not be before from");
    expectIssue(err, "rules.calendar[2].dates[1].from", "real date");
    expectIssue(err, "rules.calendar[2].days", "must not be empty");
    expectIssue(err, "rules.calendar[2]", "must set at least one of primary, secondary, maxCount, maxAgeMs");
    expectIssue(err, "rules.load[0].windowMs", "must be an integer ≥ 100");
    expectIssue(err, "rules.load[0].thresholdPerSec", "must be > 0");
  });

  test("topic rules are validated with the topic's path", () => {
    const err = rejects({ ...minimal(), topics: { demo: { channel: "nats", rules: { primary: "fifo", secondary: "fifo", maxcount: 3 } } } });
    expectIssue(err, "topics.demo.rules", 'unknown key "maxcount" (did you mean "maxCount"?)');
    expectIssue(err, "topics.demo.rules", "must set maxCount, maxAgeMs or both");
  });

  test("webhook topics: url required and http(s), secret format, unknown channel", () => {
    const err = rejects({
      ...minimal(),
      topics: {
        a: { channel: "webhook" },
        b: { channel: "webhook", url: "ftp://example.com" },
        c: { channel: "webhook", url: "https://example.com", secret: "short" },
        d: { channel: "smtp" },
      },
    });
    expectIssue(err, "topics.a.url", "required");
    expectIssue(err, "topics.b.url", "must be an http:// or https:// URL");
    expectIssue(err, "topics.c.secret", "whsec_");
    expectIssue(
      err,
      "topics.d.channel",
      'must be one of "nats", "webhook", "email", "webpush", "apns", "fcm", "sse" (got "smtp"); or, to push to several channels, leave "channel" out and list them in "channels"',
    );
  });

  test("a topic with neither channel nor channels: one issue saying what either would be", () => {
    const err = rejects({ ...minimal(), topics: { t: { url: "https://example.com/h" } } });
    expect(err.issues).toEqual([
      {
        path: "topics.t.channel",
        message: 'required: must be one of "nats", "webhook", "email", "webpush", "apns", "fcm", "sse"; or, to push to several channels, leave "channel" out and list them in "channels"',
      },
    ]);
  });

  test("email topics: smtp.host and from required, a template rendering subject and text", () => {
    const err = rejects({
      ...minimal(),
      topics: {
        a: { channel: "email", smtp: {}, from: "x@example.com", template: { subject: "s", text: "t" } },
        b: { channel: "email", smtp: { host: "mail" }, template: { subject: "s", text: "t" } },
        c: { channel: "email", smtp: { host: "mail" }, from: "x@example.com", template: { subject: "s" } },
        d: { channel: "email", smtp: { host: "mail", auth: { user: "u", pass: { env: "not a name" } } }, from: "x@example.com", template: { subject: "s", text: "t" } },
      },
    });
    expectIssue(err, "topics.a.smtp.host", "required");
    expectIssue(err, "topics.b.from", "required");
    expectIssue(err, "topics.c.template.text", 'an email topic\'s template must render "text" (and may render "html")');
    expectIssue(err, "topics.d.smtp.auth.pass.env", "must match");
    const ok = parseConfig({ ...minimal(), topics: { m: { channel: "email", smtp: { host: "mail", caFile: "ca.pem" }, from: "x@example.com", template: { subject: "s", text: "t" } } } }, "/etc/herald");
    expect(ok.topics.m).toMatchObject({ smtp: { host: "mail", port: 587, secure: false, requireTLS: false, maxConnections: 5, caFile: "/etc/herald/ca.pem" }, timeoutMs: 10_000 });
  });

  describe("webhook secrets are 24–64 bytes, as Standard Webhooks asks", () => {
    const whsec = (bytes: number) => "whsec_" + Buffer.alloc(bytes, 0xa5).toString("base64");
    const withSecret = (secret: string) => ({ ...minimal(), topics: { hook: { channel: "webhook", url: "https://example.com/h", secret } } });
    const accepted = (secret: string) => parseConfig(withSecret(secret), tmp).topics.hook;

    test.each([3, 23, 65])("a whsec_ secret of %i bytes is refused, naming the rule and how to make one", (bytes) => {
      const err = rejects(withSecret(whsec(bytes)));
      expectIssue(err, "topics.hook.secret", `decodes to ${bytes} bytes; a whsec_ secret must decode to 24–64 bytes`);
      expectIssue(err, "topics.hook.secret", 'make one with: echo "whsec_$(openssl rand -base64 32)"');
      expect(err.message).not.toContain(whsec(bytes).slice("whsec_".length));
    });

    test.each([24, 64])("a whsec_ secret of %i bytes is accepted", (bytes) => {
      expect(accepted(whsec(bytes))).toMatchObject({ secret: whsec(bytes) });
    });

    test("a raw secret counts its UTF-8 bytes: 23 refused, 24 accepted", () => {
      const err = rejects(withSecret("r".repeat(23)));
      expectIssue(err, "topics.hook.secret", "is 23 bytes; a raw secret (used as its UTF-8 bytes) must be 24–64 bytes");
      expect(accepted("r".repeat(24))).toMatchObject({ secret: "r".repeat(24) });
      // 12 characters of 2 bytes each are 24 bytes.
      expect(accepted("é".repeat(12))).toMatchObject({ secret: "é".repeat(12) });
    });

    test("a whsec_ secret that is not base64 is refused", () => {
      expectIssue(rejects(withSecret("whsec_not base64!")), "topics.hook.secret", 'must be "whsec_" followed by standard base64');
    });
  });

  test("template fields that would collide with the push payload's own fields are reserved", () => {
    const err = rejects({
      ...minimal(),
      topics: {
        a: { channel: "nats", template: { title: "ok", id: "{{x}}", data: "{{y}}" } },
        b: { channel: "webhook", url: "https://example.com/h", template: { createdAt: "{{z}}", subject: 7 } },
      },
    });
    expectIssue(err, "topics.a.template.id", '"id" is reserved: choose another field name');
    expectIssue(err, "topics.a.template.data", '"data" is reserved: choose another field name');
    // Checked even when another field of the same template fails.
    expectIssue(err, "topics.b.template.createdAt", '"createdAt" is reserved');
    expectIssue(err, "topics.b.template.subject", "must be a string");
    expect(err.issues.filter((i) => i.path === "topics.a.template.title")).toEqual([]);
    for (const field of ["topic", "to"]) {
      expectIssue(rejects({ ...minimal(), topics: { a: { channel: "nats", template: { [field]: "x" } } } }), `topics.a.template.${field}`, "is reserved");
    }
  });

  test("a config that is not an object", () => {
    expectIssue(rejects([]), "(root)", "must be an object");
  });
});

describe("parseRules (shared with herald rules set)", () => {
  test("accepts a full rule with overrides", () => {
    const rule = {
      primary: "lifo",
      secondary: "random",
      maxCount: 3,
      seed: 42,
      calendar: [
        { name: "night", timeZone: "Europe/Paris", time: { from: "22:00", to: "06:00" }, primary: "fifo" },
        { days: ["sat", "sun"], dates: [{ from: "2024-02-29", to: "2024-03-01" }], maxAgeMs: 500 },
      ],
      load: [{ windowMs: 1000, thresholdPerSec: 0.5, maxCount: 50 }],
    };
    expect(parseRules(rule)).toEqual(rule);
  });

  test("throws RulesError naming the path under the given prefix", () => {
    let err: unknown;
    try {
      const calendar = [{ days: ["mon"], time: { from: "10:00", to: "10:00" }, primary: "lifo" }];
      parseRules({ primary: "fifo", secondary: "lifo", maxAgeMs: 0, calendar }, "topics.x.rules");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RulesError);
    const { message, issues } = err as RulesError;
    expect(issues.map((i) => i.path)).toEqual(["topics.x.rules.maxAgeMs", "topics.x.rules.calendar[0].time.to"]);
    expect(message).toContain("topics.x.rules.maxAgeMs: must be an integer ≥ 1 (got 0)");
    expect(message).toContain("topics.x.rules.calendar[0].time.to: must differ from from");
  });
});

describe("loadConfig", () => {
  test("a missing file says how to fix it", async () => {
    const missing = path.join(tmp, "nope.json");
    const err = await loadConfig(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`cannot read config file ${missing}: not found; pass -c FILE or create cluster.config.json`);
  });

  test("malformed JSON names the line and column", async () => {
    const file = path.join(tmp, "bad.json");
    await writeFile(file, '{\n  "cluster": "c",\n  "nodes": [{ "name": "a" },],\n}\n');
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    // The stray "]" after the trailing comma is line 3, column 29.
    expect((err as Error).message).toMatch(new RegExp(`^cannot parse config file ${escape(file)}: line 3, column 29: .*no trailing commas`));
    expect((err as ConfigError).file).toBe(file);
  });

  test("validation errors end with a hint naming the file", async () => {
    const file = path.join(tmp, "invalid.json");
    await writeFile(file, JSON.stringify({ cluster: "c", nats: { embedded: true }, nodes: [{ name: "a", actors: { processor: -1 } }] }));
    const err = (await loadConfig(file).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    const lines = err.message.split("\n");
    expect(lines[1]).toBe("  nodes[0].actors.processor: must be an integer ≥ 0 (got -1)");
    expect(lines.at(-1)).toContain(`fix ${file}`);
    expect(err.file).toBe(file);
  });

  test("storeDir is resolved against the config file's directory, not the cwd", async () => {
    const dir = path.join(tmp, "deploy", "site");
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, "cluster.config.json");
    await writeFile(file, JSON.stringify({ cluster: "c", nats: { embedded: true, storeDir: "../data/nats" }, nodes: [{ name: "a" }] }));
    const loaded = await loadConfig(path.relative(process.cwd(), file));
    expect(loaded.file).toBe(file);
    expect(loaded.dir).toBe(dir);
    expect(loaded.config.nats.storeDir).toBe(path.join(tmp, "deploy", "data", "nats"));
    const absolute = path.join(tmp, "elsewhere");
    expect(parseConfig({ ...minimal(), nats: { ...minimal().nats, storeDir: absolute } }, dir).nats.storeDir).toBe(absolute);
  });
});

describe("cluster.config.schema.json", () => {
  test("the committed file equals the schema generated from the zod schema (npm run schema)", async () => {
    const committed = JSON.parse(await readFile(path.join(root, "cluster.config.schema.json"), "utf8"));
    expect(committed).toEqual(configJsonSchema());
  });

  test("is draft 2020-12 with a title and field descriptions", () => {
    const schema = configJsonSchema() as any;
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.title).toBe("Herald cluster config");
    expect(schema.properties.heartbeat.properties.intervalMs.description).toMatch(/milliseconds/);
    const processor = schema.properties.nodes.items.properties.actors.properties.processor;
    expect(processor).toMatchObject({ type: "integer", minimum: 0, maximum: 64, default: 1 });
  });

  test("the example validates against it, and a typo does not", async () => {
    const schema = configJsonSchema();
    const example = JSON.parse(await readFile(exampleFile, "utf8"));
    expect(validateJsonSchema(schema, example)).toEqual([]);
    example.nodes[0].actors.procesor = 1;
    example.topics.demo.channel = "smtp";
    expect(validateJsonSchema(schema, example)).toEqual(["nodes[0].actors: unknown key procesor", "topics.demo: matches 0 of 8 oneOf"]);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * A small JSON Schema checker, for the keywords zod emits here — enough to prove the editor schema
 * accepts the example (no validator library is a dependency).
 */
function validateJsonSchema(rootSchema: any, value: unknown): string[] {
  const errors: string[] = [];
  const check = (schema: any, v: any, at: string): void => {
    const p = at || "(root)";
    if (schema.$ref) check(rootSchema.$defs[schema.$ref.replace("#/$defs/", "")], v, at);
    if (schema.oneOf) {
      const matches = schema.oneOf.filter((s: any) => validateJsonSchema({ ...rootSchema, ...s }, v).length === 0).length;
      if (matches !== 1) errors.push(`${p}: matches ${matches} of ${schema.oneOf.length} oneOf`);
    }
    const type = Array.isArray(v) ? "array" : v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v;
    if (schema.type && !(schema.type === type || (schema.type === "number" && type === "integer"))) {
      errors.push(`${p}: expected ${schema.type}, got ${type}`);
      return;
    }
    if ("const" in schema && v !== schema.const) errors.push(`${p}: expected ${schema.const}`);
    if (schema.enum && !schema.enum.includes(v)) errors.push(`${p}: not in enum`);
    if (schema.pattern && !new RegExp(schema.pattern, "u").test(v)) errors.push(`${p}: does not match ${schema.pattern}`);
    if (schema.minLength !== undefined && v.length < schema.minLength) errors.push(`${p}: too short`);
    if (schema.minimum !== undefined && v < schema.minimum) errors.push(`${p}: below minimum`);
    if (schema.maximum !== undefined && v > schema.maximum) errors.push(`${p}: above maximum`);
    if (schema.minItems !== undefined && v.length < schema.minItems) errors.push(`${p}: too few items`);
    if (type === "array" && schema.items) v.forEach((item: unknown, i: number) => check(schema.items, item, `${at}[${i}]`));
    if (type === "object") {
      for (const key of schema.required ?? []) if (!(key in v)) errors.push(`${p}: missing ${key}`);
      for (const [key, item] of Object.entries(v)) {
        const sub = `${at ? `${at}.` : ""}${key}`;
        if (schema.propertyNames) check(schema.propertyNames, key, `${sub} (name)`);
        if (schema.properties?.[key]) check(schema.properties[key], item, sub);
        else if (schema.additionalProperties === false) errors.push(`${p}: unknown key ${key}`);
        else if (typeof schema.additionalProperties === "object") check(schema.additionalProperties, item, sub);
      }
    }
  };
  check(rootSchema, value, "");
  return errors;
}
