/**
 * The config file of the embedded nats-server when the cluster config asks for credentials
 * (`nats.embedded` with `nats.auth`): the nodes' user with the node role, and the
 * `nats.embeddedUsers` (publishers, operators) with theirs; or, for a token, the token alone.
 * Written beside the store directory with mode 0600: it holds the passwords.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { channelsOf, type HeraldConfig } from "../config/index.js";
import { revealSecret } from "./connect.js";
import { authorizationBlock, type ServerUser } from "./permissions.js";

/** The server config text, or undefined when the embedded server needs none (no `nats.auth`). */
export function embeddedServerConfig(config: HeraldConfig): string | undefined {
  const auth = config.nats.auth;
  if (auth === undefined) return undefined;
  if (auth.token !== undefined) return `authorization {\n  token: ${JSON.stringify(revealSecret(auth.token, "nats.auth.token"))}\n}\n`;
  if (auth.user === undefined || auth.pass === undefined) return undefined;
  const users: ServerUser[] = [
    { user: auth.user, password: revealSecret(auth.pass, "nats.auth.pass"), role: "node" },
    ...(config.nats.embeddedUsers ?? []).map((u, i) => ({ user: u.user, password: revealSecret(u.pass, `nats.embeddedUsers[${i}].pass`), role: u.role })),
  ];
  const own = Object.values(config.topics)
    .flatMap(channelsOf)
    .flatMap((t) => (t.channel === "nats" && t.subject !== undefined ? [t.subject] : []));
  return authorizationBlock(users, config.subjectPrefix, own);
}

/** Writes {@link embeddedServerConfig} beside the store dir (0600); undefined when none is needed. */
export async function writeEmbeddedServerConfig(config: HeraldConfig): Promise<string | undefined> {
  const text = embeddedServerConfig(config);
  if (text === undefined) return undefined;
  const file = path.join(path.dirname(config.nats.storeDir), `${path.basename(config.nats.storeDir)}.server.conf`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `# Written by herald start from nats.auth and nats.embeddedUsers; it holds passwords.\n${text}`, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}
