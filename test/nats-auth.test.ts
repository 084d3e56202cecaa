/**
 * Logging in to NATS, against real nats-servers that require it: user and password (the password
 * from the environment), a token, an NKey seed file, a .creds file (the server in operator mode
 * with signed JWTs), and TLS with client certificates. For each, a node starts and pushes, and the
 * CLI works from the config and from the `nats` CLI's environment variables; a wrong credential is
 * one line and a non-zero exit, and no secret appears in any output.
 */
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { jetstream } from "@nats-io/jetstream";
import { credsAuthenticator, nkeyAuthenticator, nkeys, type ConnectionOptions } from "@nats-io/transport-node";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { makePki } from "./helpers/pki.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "herald-auth-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const PASSWORD = "s3cret-Pa55word-never-shown";

interface Login {
  /** nats-server config text. */
  server: string;
  /** `nats.auth` / `nats.tls` of the cluster config. */
  nats: Record<string, unknown>;
  /** The harness's own login. */
  harness: Partial<ConnectionOptions>;
  /** Environment for nodes and the CLI. */
  env?: Record<string, string>;
}

/** A one-node cluster logging in as `login` says; it must push a message end to end. */
async function clusterWith(login: Login): Promise<TestCluster> {
  cluster = await TestCluster.start({
    nodes: 1,
    actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
    natsConfig: login.server,
    harness: login.harness,
    nodeEnv: login.env ?? {},
    extra: { topics: { demo: { channel: "nats" } } },
  });
  const c = cluster;
  // The harness wrote `nats: { servers }`: add the login to the file the nodes and the CLI read.
  c.config.nats = { ...c.config.nats, ...login.nats };
  await writeFile(c.configFile, JSON.stringify(c.config, null, 2));
  const out = new Set<string>();
  c.nc.subscribe("herald.out.demo", {
    callback: (_e, m) => {
      out.add(m.json<{ id: string }>().id);
    },
  });
  c.startAll();
  await c.waitStatus("the node running", allRunning, 30_000);
  await jetstream(c.nc).publish("herald.in.demo", JSON.stringify({ id: "in", data: {} }));
  await waitFor(() => out.has("in"), { timeoutMs: 10_000, what: "a push through the logged-in node" });
  return c;
}

/** `herald status --json` as the CLI sees it with `env`; exit code and parsed output. */
async function status(c: TestCluster, env: Record<string, string> = {}, config = c.configFile) {
  const r = await c.cli(["status", "--json", "-c", config], env);
  return { ...r, json: r.code === 0 ? (JSON.parse(r.stdout) as { nodes: { state: string }[] }) : undefined };
}

/** A failed login: one line on stderr naming the problem, no stack, no secret. */
function oneLine(r: { code: number | null; stderr: string; stdout: string }, secret: string, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr + r.stdout).not.toContain(secret);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("NATS logins", () => {
  it("user and password (from the environment): nodes and the CLI log in; a wrong password is one line, never shown", async () => {
    const c = await clusterWith({
      server: `authorization { users: [ { user: herald, password: "${PASSWORD}" } ] }\n`,
      nats: { auth: { user: "herald", pass: { env: "HERALD_TEST_NATS_PASS" } } },
      harness: { user: "herald", pass: PASSWORD },
      env: { HERALD_TEST_NATS_PASS: PASSWORD },
    });
    expect(c.nodeOutput("n1")).toContain("as user herald (password from $HERALD_TEST_NATS_PASS)");
    expect(c.nodeOutput("n1")).not.toContain(PASSWORD);
    // The CLI from the config (secret from the environment) and from the nats CLI's variables.
    expect((await status(c, { HERALD_TEST_NATS_PASS: PASSWORD })).json?.nodes[0]?.state).toBe("alive");
    const bare = join(c.dir, "bare.json");
    await writeFile(bare, JSON.stringify({ ...c.config, nats: { servers: c.config.nats.servers } }));
    expect((await status(c, { NATS_USER: "herald", NATS_PASSWORD: PASSWORD }, bare)).json?.nodes[0]?.state).toBe("alive");
    expect((await c.cli(["status", "--json", "-c", bare, "--server", `nats://herald:${PASSWORD}@${c.config.nats.servers[0].slice(7)}`])).code).toBe(0);

    const wrong = "Wrong-Pa55word-also-secret";
    oneLine(await status(c, { NATS_USER: "herald", NATS_PASSWORD: wrong }, bare), wrong, /refused the login as user herald: .*check NATS_USER\/NATS_PASSWORD/);
    oneLine(await status(c, {}, bare), PASSWORD, /refused the login without credentials.*the server requires credentials/);
    oneLine(await status(c, { HERALD_TEST_NATS_PASS: "" }), PASSWORD, /nats.auth.pass: the environment variable HERALD_TEST_NATS_PASS is not set/);
    // A node with the wrong password exits at once with the same one line.
    const node = await c.cli(["start", "--node", "n1", "-c", c.configFile], { HERALD_TEST_NATS_PASS: wrong });
    expect(node.code).not.toBe(0);
    expect(node.stderr).toMatch(/herald: NATS at .* refused the login as user herald/);
    expect(node.stderr + node.stdout).not.toContain(wrong);
    expect(node.stderr).not.toMatch(/\n\s+at /);
  });

  it("a token", async () => {
    const token = "t0ken-Secret-0123456789";
    const c = await clusterWith({ server: `authorization { token: "${token}" }\n`, nats: { auth: { token } }, harness: { token } });
    expect(c.nodeOutput("n1")).not.toContain(token);
    expect((await status(c)).json?.nodes[0]?.state).toBe("alive");
    const bare = join(c.dir, "bare.json");
    await writeFile(bare, JSON.stringify({ ...c.config, nats: { servers: c.config.nats.servers } }));
    expect((await status(c, { NATS_USER: token }, bare)).code).toBe(0);
    oneLine(await status(c, { NATS_USER: "not-the-token" }, bare), token, /refused the login with a token/);
  });

  it("an NKey seed file", async () => {
    const user = nkeys.createUser();
    const seedFile = join(dir, "user.nk");
    await writeFile(seedFile, new TextDecoder().decode(user.getSeed()));
    const c = await clusterWith({
      server: `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }\n`,
      nats: { auth: { nkeySeedFile: seedFile } },
      harness: { authenticator: nkeyAuthenticator(user.getSeed()) },
    });
    expect((await status(c)).json?.nodes[0]?.state).toBe("alive");
    const bare = join(c.dir, "bare.json");
    await writeFile(bare, JSON.stringify({ ...c.config, nats: { servers: c.config.nats.servers } }));
    expect((await status(c, { NATS_NKEY: seedFile }, bare)).code).toBe(0);
    const other = join(dir, "other.nk");
    await writeFile(other, new TextDecoder().decode(nkeys.createUser().getSeed()));
    oneLine(await status(c, { NATS_NKEY: other }, bare), "SU", /refused the login with the NKey seed in/);
  });

  it("a .creds file, the server in operator mode with signed JWTs", async () => {
    const operator = nkeys.createOperator();
    const account = nkeys.createAccount();
    const user = nkeys.createUser();
    // JetStream in operator mode needs a system account.
    const system = nkeys.createAccount();
    const opJwt = await encodeOperator("herald-test-op", operator, { system_account: system.getPublicKey() });
    const sysJwt = await encodeAccount("SYS", system, {}, { signer: operator });
    const accJwt = await encodeAccount("HERALD", account, {
      limits: { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, leaf: -1, wildcards: true, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
    }, { signer: operator });
    const userJwt = await encodeUser("herald-node", user, account);
    const credsFile = join(dir, "node.creds");
    await writeFile(credsFile, fmtCreds(userJwt, user));
    const c = await clusterWith({
      server:
        `operator: ${opJwt}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\n` +
        `resolver_preload: { ${system.getPublicKey()}: ${sysJwt}, ${account.getPublicKey()}: ${accJwt} }\n`,
      nats: { auth: { credsFile } },
      harness: { authenticator: credsAuthenticator(fmtCreds(userJwt, user)) },
    });
    expect((await status(c)).json?.nodes[0]?.state).toBe("alive");
    const bare = join(c.dir, "bare.json");
    await writeFile(bare, JSON.stringify({ ...c.config, nats: { servers: c.config.nats.servers } }));
    expect((await status(c, { NATS_CREDS: credsFile }, bare)).code).toBe(0);
    // A user signed by an account the server does not know.
    const stranger = nkeys.createUser();
    const strangerCreds = join(dir, "stranger.creds");
    await writeFile(strangerCreds, fmtCreds(await encodeUser("x", stranger, nkeys.createAccount()), stranger));
    oneLine(await status(c, { NATS_CREDS: strangerCreds }, bare), "SU", /refused the login with the credentials in/);
    oneLine(await status(c, { NATS_CREDS: join(dir, "missing.creds") }, bare), "SU", /NATS_CREDS.credsFile: cannot read .*missing.creds: no such file/);
  });

  it("TLS with a client certificate the server verifies, from the config and from NATS_CA/NATS_CERT/NATS_KEY", async () => {
    const pki = makePki(dir);
    const c = await clusterWith({
      server: `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.ca}", verify: true }\n`,
      nats: { tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } },
      harness: { tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } },
    });
    expect(c.nodeOutput("n1")).toContain("TLS with a client certificate");
    expect((await status(c)).json?.nodes[0]?.state).toBe("alive");
    const bare = join(c.dir, "bare.json");
    await writeFile(bare, JSON.stringify({ ...c.config, nats: { servers: c.config.nats.servers } }));
    expect((await status(c, { NATS_CA: pki.ca, NATS_CERT: pki.clientCert, NATS_KEY: pki.clientKey }, bare)).code).toBe(0);
    // Without a client certificate the server refuses the handshake.
    const r = await status(c, { NATS_CA: pki.ca }, bare);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
