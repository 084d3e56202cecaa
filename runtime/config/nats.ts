/**
 * The `nats` section of the config: where the servers are (or how to start the embedded one), how
 * to log in to them, TLS, and the replica count of Herald's storage.
 *
 * Secrets (a password, a token) are a string in the file or `{ "env": "NAME" }`, read from the
 * environment when a connection is made. No error here ever repeats a secret or a URL's userinfo.
 */
import * as z from "zod";
import { mustBe } from "./errors.js";
import { always, port } from "./fields.js";

/** A secret in the file, or the name of the environment variable that holds it. */
export const secret = (what: string) =>
  z
    .union([z.string().min(1), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/) })], {
      // Never quote the value: it is a secret.
      error: () => `must be the ${what} as a non-empty string, or { "env": "VARIABLE" } naming the environment variable that holds it`,
    })
    .describe(`The ${what}, or { "env": "NAME" }: read from the environment variable NAME when connecting.`);

export type Secret = string | { env: string };

/** `nats://host:port`, `tls://host:port` or bare `host:port`, as nats.js accepts them, without credentials. */
const serverUrl = z.string().superRefine((text, ctx) => {
  if (hasUserinfo(text)) {
    ctx.addIssue({
      code: "custom",
      message: "holds credentials, which the NATS client does not use from a URL (and which would show in logs): put them in nats.auth",
    });
  } else if (!isServerUrl(text)) {
    ctx.addIssue({ code: "custom", message: mustBe("nats://HOST:PORT, tls://HOST:PORT or HOST:PORT", text) });
  }
});

const auth = z
  .strictObject({
    user: z.string().min(1).optional().describe("User name (with pass)."),
    pass: secret("password").optional(),
    token: secret("token").optional(),
    credsFile: z.string().min(1).optional().describe("A .creds file (user JWT and NKey seed); relative to the config file."),
    nkeySeedFile: z.string().min(1).optional().describe("A file holding a user NKey seed (SU…); relative to the config file."),
  })
  .superRefine((a, ctx) => {
    const ways = [a.user !== undefined || a.pass !== undefined, a.token !== undefined, a.credsFile !== undefined, a.nkeySeedFile !== undefined];
    if (ways.filter(Boolean).length !== 1) {
      ctx.addIssue({ code: "custom", message: "give exactly one way to log in: user with pass, token, credsFile or nkeySeedFile" });
    } else if ((a.user === undefined) !== (a.pass === undefined)) {
      ctx.addIssue({ code: "custom", path: [a.user === undefined ? "user" : "pass"], message: "user and pass go together" });
    }
  }, always)
  .describe("How every node, actor and command logs in to NATS. Absent: no credentials.");

const tls = z
  .strictObject({
    caFile: z.string().min(1).optional().describe("CA certificate (PEM) the servers' certificates are checked against; relative to the config file."),
    certFile: z.string().min(1).optional().describe("Client certificate (PEM), for servers that verify clients."),
    keyFile: z.string().min(1).optional().describe("Client certificate's private key (PEM)."),
  })
  .superRefine((t, ctx) => {
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
      ctx.addIssue({ code: "custom", path: [t.certFile === undefined ? "certFile" : "keyFile"], message: "certFile and keyFile go together" });
    }
  }, always)
  .describe("TLS to the NATS servers. Absent: TLS only if a server requires it (checked against the system's CAs).");

const embeddedUser = z
  .strictObject({
    user: z.string().min(1).describe("User name."),
    pass: secret("password"),
    role: z.enum(["publisher", "operator"]).describe("publisher: may only publish herald.in.> and request herald.submit; operator: the CLI."),
  })
  .describe("A user the embedded nats-server accepts besides the nodes' own (nats.auth).");

export const nats = z
  .strictObject({
    embedded: z.boolean().default(false).describe("Start a nats-server with the cluster (`herald start`); false: use `servers`."),
    host: z.string().min(1).default("127.0.0.1").describe("Listen host of the embedded nats-server."),
    port: port.default(4333).describe("Client port of the embedded nats-server."),
    storeDir: z
      .string()
      .min(1)
      .default(".herald/nats")
      .describe("JetStream store directory of the embedded nats-server; relative to the config file."),
    servers: z
      .array(serverUrl)
      .min(1)
      .optional()
      .describe("NATS URLs every node and command connects to. Required when embedded is false; default: the embedded server."),
    auth: auth.optional(),
    tls: tls.optional(),
    embeddedUsers: z
      .array(embeddedUser)
      .optional()
      .describe("Publisher and operator users of the embedded server (needs embedded and nats.auth with user and pass)."),
    replicas: z
      .union([z.literal(1), z.literal(3), z.literal(5)], { error: (issue) => mustBe("1, 3 or 5", issue.input) })
      .default(1)
      .describe(
        "Copies JetStream keeps of every stream and bucket Herald creates (on a NATS cluster of at least that many servers). 1 on a single server; 3 or 5 survive the loss of 1 or 2 servers.",
      ),
  })
  .superRefine((n, ctx) => {
    if (n.embedded === false && n.servers === undefined) {
      ctx.addIssue({ code: "custom", path: ["servers"], message: "required when nats.embedded is false" });
    }
    if (n.embeddedUsers !== undefined) {
      if (n.embedded !== true) ctx.addIssue({ code: "custom", path: ["embeddedUsers"], message: "only for the embedded server (nats.embedded: true)" });
      else if (n.auth?.user === undefined) {
        ctx.addIssue({ code: "custom", path: ["embeddedUsers"], message: "needs nats.auth with user and pass: the nodes' own user" });
      }
    }
    if (n.embedded === true && n.auth !== undefined && n.auth.user === undefined && n.auth.token === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["auth"],
        message: "the embedded server can be set up with user and pass or a token; for NKeys and .creds, run your own nats-server (see deploy/nats/)",
      });
    }
  }, always)
  .prefault({})
  .describe("Where the NATS server is, how to log in, or how to start the embedded one.");

/** True when a server URL carries `user@` or `user:pass@`. */
export function hasUserinfo(text: string): boolean {
  const at = text.indexOf("@");
  if (at < 0) return false;
  const scheme = text.indexOf("://");
  return at > (scheme < 0 ? 0 : scheme + 3);
}

function isServerUrl(text: string): boolean {
  if (!text.includes("://")) return /^[A-Za-z0-9.-]+:\d{1,5}$/.test(text) || /^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(text);
  try {
    const url = new URL(text);
    return (url.protocol === "nats:" || url.protocol === "tls:") && url.hostname !== "";
  } catch {
    return false;
  }
}
