/**
 * The email channel against a real SMTP server on loopback (smtp-server, with STARTTLS on a
 * certificate of our own CA and AUTH required), each mail parsed with mailparser: the channel
 * alone (what is sent, and how each SMTP answer maps to an outcome), then end to end from
 * `herald publish` on a real cluster.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer, type SMTPServerAddress } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmailChannel } from "../actors/pusher/channels/index.js";
import type { EmailTopicConfig } from "../runtime/config/schema.js";
import type { PushMessage } from "../runtime/pipeline/types.js";
import { TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { makePki } from "./helpers/pki.js";

const USER = "herald";
const PASS = "smtp-test-password";

interface Mailbox {
  port: number;
  mails: ParsedMail[];
  /** The SMTP reply code the next RCPT TO gets for an address (undefined: accept). */
  answer: (address: string) => number | undefined;
  close(): Promise<void>;
}

/** A real SMTP server: STARTTLS required, AUTH PLAIN/LOGIN with one user, every mail parsed. */
async function startMailbox(pki: ReturnType<typeof makePki>): Promise<Mailbox> {
  const box: Mailbox = { port: 0, mails: [], answer: () => undefined, close: async () => undefined };
  const server = new SMTPServer({
    secure: false,
    key: readFileSync(pki.serverKey),
    cert: readFileSync(pki.serverCert),
    authMethods: ["PLAIN", "LOGIN"],
    // No login before STARTTLS: the client must upgrade to send its password.
    allowInsecureAuth: false,
    onAuth(auth, _session, cb) {
      if (auth.username === USER && auth.password === PASS) return cb(null, { user: USER });
      cb(Object.assign(new Error("authentication failed"), { responseCode: 535 }));
    },
    onRcptTo(address: SMTPServerAddress, _session, cb) {
      const code = box.answer(address.address);
      if (code === undefined) return cb();
      cb(Object.assign(new Error(code >= 500 ? "no such mailbox here" : "mailbox busy, try later"), { responseCode: code }));
    },
    onData(stream, _session, cb) {
      simpleParser(stream).then(
        (mail) => {
          box.mails.push(mail);
          cb();
        },
        (err: Error) => cb(err),
      );
    },
    logger: false,
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  box.port = (server.server.address() as AddressInfo).port;
  box.close = () => new Promise<void>((r) => server.close(() => r()));
  return box;
}

function message(over: Partial<PushMessage> = {}): PushMessage {
  return {
    id: "01EMAILTEST0000000000000000",
    topic: "mail",
    to: "ada@example.com",
    createdAt: 1_700_000_000_000,
    rendered: { subject: "Hello Ada", text: "Welcome, Ada.", html: "<p>Welcome, <b>Ada</b>.</p>" },
    data: { name: "Ada" },
    ...over,
  };
}

describe("email channel", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let box: Mailbox;
  let topic: EmailTopicConfig;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "herald-email-"));
    pki = makePki(dir);
    box = await startMailbox(pki);
    topic = {
      channel: "email",
      smtp: { host: "127.0.0.1", port: box.port, secure: false, requireTLS: true, caFile: pki.ca, auth: { user: USER, pass: { env: "HERALD_TEST_SMTP_PASS" } }, maxConnections: 2 },
      from: "Herald <noreply@example.com>",
      timeoutMs: 5000,
      template: { subject: "Hello {{name}}", text: "Welcome, {{name}}." },
    };
    process.env.HERALD_TEST_SMTP_PASS = PASS;
  });

  afterAll(async () => {
    await box?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends subject, text and html to the message's address, over STARTTLS with a login", async () => {
    const ch = new EmailChannel();
    try {
      const o = await ch.push(message(), topic);
      expect(o).toMatchObject({ outcome: "delivered" });
      const mail = box.mails.at(-1)!;
      expect(mail.subject).toBe("Hello Ada");
      expect(mail.text?.trim()).toBe("Welcome, Ada.");
      expect(mail.html).toBe("<p>Welcome, <b>Ada</b>.</p>");
      expect(mail.from?.text).toBe('"Herald" <noreply@example.com>');
      expect((mail.to as { text: string }).text).toBe("ada@example.com");
      expect(mail.headers.get("x-herald-id")).toBe("01EMAILTEST0000000000000000");
    } finally {
      await ch.close();
    }
  });

  it("a 4xx answer is a retry, a 5xx a dead letter with the server's words; a wrong password is final", async () => {
    const ch = new EmailChannel();
    try {
      box.answer = (a) => (a.startsWith("busy") ? 451 : a.startsWith("gone") ? 550 : undefined);
      const busy = await ch.push(message({ to: "busy@example.com" }), topic);
      expect(busy.outcome).toBe("retry");
      expect(busy).toMatchObject({ reason: expect.stringContaining("deferred the mail (451)") });
      const gone = await ch.push(message({ to: "gone@example.com" }), topic);
      expect(gone).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringMatching(/refused the mail \(550\).*no such mailbox here/) });
      box.answer = () => undefined;
      const wrong = await ch.push(message(), { ...topic, smtp: { ...topic.smtp, auth: { user: USER, pass: "not-it" } } });
      expect(wrong).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining("(535)") });
      expect(JSON.stringify(wrong)).not.toContain("not-it");
    } finally {
      await ch.close();
    }
  });

  it("a message that cannot be mail is a dead letter at once; a server that is down is a retry", async () => {
    const ch = new EmailChannel();
    try {
      expect(await ch.push(message({ to: undefined }), topic)).toMatchObject({ outcome: "dead", reason: "rejected", error: expect.stringContaining('"to" must be a recipient id or one email:<address>, got none') });
      expect(await ch.push(message({ to: "a@example.com, b@example.com" }), topic)).toMatchObject({ outcome: "dead", reason: "rejected" });
      expect(await ch.push(message({ to: "x@example.com\r\nBcc: y@example.com" }), topic)).toMatchObject({ outcome: "dead", reason: "rejected" });
      expect(await ch.push(message({ rendered: { text: "no subject" } }), topic)).toMatchObject({ outcome: "dead", reason: "render" });
      const down = await ch.push(message(), { ...topic, smtp: { ...topic.smtp, port: 1 }, timeoutMs: 1000 });
      expect(down.outcome).toBe("retry");
      // Without the test CA the server's certificate is not trusted: STARTTLS is verified, nothing is sent.
      const { caFile: _ca, ...untrusted } = topic.smtp;
      const sent = box.mails.length;
      const distrust = await ch.push(message(), { ...topic, smtp: untrusted });
      expect(distrust).toMatchObject({ outcome: "retry", reason: expect.stringMatching(/certificate/i) });
      expect(box.mails.length).toBe(sent);
    } finally {
      await ch.close();
    }
  });

  it("end to end: herald publish on a cluster arrives rendered; a 4xx is retried until it is taken; a 5xx becomes a dead letter", async () => {
    box.answer = () => undefined;
    const before = box.mails.length;
    const cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      nodeEnv: { HERALD_TEST_SMTP_PASS: PASS },
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 5 } },
        topics: { mail: { ...topic, template: { subject: "Hello {{name}}", text: "Welcome, {{name}}.", html: "<p>Welcome, {{name}}.</p>" } } },
      },
    });
    try {
      cluster.startAll();
      await cluster.waitStatus("running", (s) => s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running")), 30_000);
      const pub = await cluster.cli(["publish", "mail", "--to", "ada@example.com", "--data", '{"name":"Ada"}', "-c", cluster.configFile]);
      expect(pub.code, pub.stderr).toBe(0);
      await waitFor(() => box.mails.length > before, { timeoutMs: 20_000, what: "the mail at the SMTP server" });
      const mail = box.mails.at(-1)!;
      expect([mail.subject, mail.text?.trim(), mail.html]).toEqual(["Hello Ada", "Welcome, Ada.", "<p>Welcome, Ada.</p>"]);
      expect(mail.headers.get("x-herald-id")).toBe(pub.stdout.trim().split(/\s+/).at(-1));

      // Busy twice, then taken: the exception queue retries it.
      let deferred = 0;
      box.answer = (a) => (a === "later@example.com" && deferred++ < 2 ? 451 : a === "nobody@example.com" ? 550 : undefined);
      expect((await cluster.cli(["publish", "mail", "--to", "later@example.com", "--data", '{"name":"Lin"}', "-c", cluster.configFile])).code).toBe(0);
      await waitFor(() => box.mails.some((m) => (m.to as { text: string }).text === "later@example.com"), { timeoutMs: 20_000, what: "the deferred mail taken on a retry" });
      expect(deferred).toBe(3);

      expect((await cluster.cli(["publish", "mail", "--to", "nobody@example.com", "--data", '{"name":"No"}', "-c", cluster.configFile])).code).toBe(0);
      const letters = await waitFor(async () => {
        const r = await cluster.cli(["dlq", "list", "--json", "-c", cluster.configFile]);
        const rows = JSON.parse(r.stdout || "[]") as { topic: string; reason: string; error: string }[];
        return rows.length > 0 ? rows : undefined;
      }, { timeoutMs: 20_000, what: "the refused mail as a dead letter" });
      expect(letters).toEqual([expect.objectContaining({ topic: "mail", reason: "rejected", error: expect.stringMatching(/refused the mail \(550\)/) })]);
      expect(cluster.nodeOutput("n1")).not.toContain(PASS);

      // A recipient id in `to`: the registry's addresses each get the mail; an unknown id is a dead letter.
      const set = await cluster.cli(["recipients", "set", "ada", "--json", '{"email":["ada@example.com","ada@work.example.com"]}', "-c", cluster.configFile]);
      expect(set.code, set.stderr).toBe(0);
      expect(JSON.parse((await cluster.cli(["recipients", "get", "ada", "--json", "-c", cluster.configFile])).stdout)).toEqual({ email: ["ada@example.com", "ada@work.example.com"] });
      const n = box.mails.length;
      expect((await cluster.cli(["publish", "mail", "--to", "ada", "--data", '{"name":"Ada"}', "-c", cluster.configFile])).code).toBe(0);
      await waitFor(() => box.mails.length >= n + 2, { timeoutMs: 20_000, what: "a mail at each of the recipient's addresses" });
      expect(box.mails.slice(n).map((m) => (m.to as { text: string }).text).sort()).toEqual(["ada@example.com", "ada@work.example.com"]);
      expect((await cluster.cli(["publish", "mail", "--to", "nobody-known", "--data", '{"name":"X"}', "-c", cluster.configFile])).code).toBe(0);
      await waitFor(async () => {
        const rows = JSON.parse((await cluster.cli(["dlq", "list", "--json", "-c", cluster.configFile])).stdout || "[]") as { error: string }[];
        return rows.some((r) => r.error.includes('"nobody-known", which is not a recipient in the registry'));
      }, { timeoutMs: 20_000, what: "the unknown recipient's dead letter" });
      expect((await cluster.cli(["recipients", "rm", "ada", "-c", cluster.configFile])).stdout).toBe("recipient ada removed\n");
      const gone = await cluster.cli(["recipients", "get", "ada", "-c", cluster.configFile]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain("no recipient ada in the registry");
    } finally {
      await cluster.stop();
    }
  });
});
