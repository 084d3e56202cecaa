import { names } from "../names.js";
/**
 * The NATS permissions of Herald's three roles, as nats-server config. The same text is shipped in
 * deploy/nats/ (`npm run permissions` writes it; a test checks it matches) and written into the
 * config of the embedded server when `nats.auth` is set.
 *
 * - **node**: what Herald itself needs. Everything under the subject prefix — including the
 *   internal work subjects (`herald.work.*`) only nodes may use, so a pusher pushes (and signs)
 *   only what its own cluster's processors sent — plus JetStream's API, acks and flow control,
 *   Herald's KV buckets, and its own inbox (`_INBOX_herald.>`), which no other role can read (and
 *   `_INBOX.>`, for the CLI run with the nodes' credentials from the config).
 * - **publisher**: may only publish `herald.in.>` (with a JetStream ack) and request
 *   `herald.submit`. It cannot stop a node, change rules, read messages or dead letters, join the
 *   work subjects, or reach the JetStream API.
 * - **operator**: the CLI — status, stop, rules, pause, dead letters, scheduled messages, publish,
 *   watch, fault drills.
 */

export type Role = "node" | "publisher" | "operator";
export const ROLES: readonly Role[] = ["node", "publisher", "operator"];

export interface Permissions {
  publish: string[];
  subscribe: string[];
  /** May answer requests it received (publish to their reply subjects). */
  allowResponses: boolean;
}

/** Every KV bucket Herald uses: the registry, rules, recipients, poison marks, collector checkpoints and endpoints. */
function buckets(prefix: string): string[] {
  const p = names(prefix);
  return [p.registryBucket, p.rulesBucket, p.recipientsBucket, p.poisonBucket, p.collectorsBucket, p.endpointsBucket];
}

/**
 * @param extraPublish subjects the nodes publish outside the prefix: topics' own `subject`s.
 */
export function rolePermissions(role: Role, prefix = "herald", extraPublish: readonly string[] = []): Permissions {
  const n = names(prefix);
  const kv = buckets(prefix).map((b) => `$KV.${b}.>`);
  switch (role) {
    case "node":
      return {
        publish: [`${prefix}.>`, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", ...kv, ...extraPublish],
        // `_INBOX.>` too: the CLI run with the nodes' own credentials (the config's) uses it.
        subscribe: [`${prefix}.>`, `${n.nodeInbox}.>`, "_INBOX.>"],
        allowResponses: true,
      };
    case "publisher":
      return { publish: [`${prefix}.in.>`, n.submit], subscribe: ["_INBOX.>"], allowResponses: false };
    case "operator": {
      const [registry, rules, recipients] = buckets(prefix);
      return {
        // `herald.clock.>`: `herald scheduled cancel` reads the server's clock with a probe (scheduled/server-clock.ts).
        publish: [n.submit, n.status, `${prefix}.ctl.>`, `${prefix}.in.>`, n.clockSubjects, "$JS.API.>", `$KV.${registry}.>`, `$KV.${rules}.>`, `$KV.${recipients}.>`, `$KV.${n.endpointsBucket}.>`],
        subscribe: ["_INBOX.>", `${prefix}.out.>`, n.events, `${n.events}.>`],
        allowResponses: false,
      };
    }
  }
}

export interface ServerUser {
  user: string;
  /** The password, or a `$VARIABLE` nats-server reads from its environment. */
  password: string;
  role: Role;
}

/**
 * An `authorization { users: [...] }` block for nats-server with each user's role permissions.
 * Passwords are written as given: `$NAME` makes nats-server read them from its environment.
 */
export function authorizationBlock(users: readonly ServerUser[], prefix = "herald", extraPublish: readonly string[] = []): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(", ")}]`;
  const entries = users.map((u) => {
    const p = rolePermissions(u.role, prefix, extraPublish);
    const password = u.password.startsWith("$") ? u.password : JSON.stringify(u.password);
    return [
      `    # ${u.role}`,
      `    {`,
      `      user: ${JSON.stringify(u.user)}`,
      `      password: ${password}`,
      `      permissions: {`,
      `        publish: { allow: ${list(p.publish)} }`,
      `        subscribe: { allow: ${list(p.subscribe)} }`,
      ...(p.allowResponses ? [`        allow_responses: true`] : []),
      `      }`,
      `    }`,
    ].join("\n");
  });
  return `authorization {\n  users: [\n${entries.join("\n")}\n  ]\n}\n`;
}

/** deploy/nats/herald-permissions.conf: the three roles, passwords from the server's environment. */
export function shippedPermissionsConfig(prefix = "herald"): string {
  const header = [
    "# Herald's three NATS roles (see README, \"Securing NATS\"). Include this file in your nats-server",
    "# config (`include herald-permissions.conf`) and set the passwords in the server's environment:",
    "#   HERALD_NODE_PASS       the nodes (nats.auth in cluster.config.json)",
    "#   HERALD_PUBLISHER_PASS  services that publish messages",
    "#   HERALD_OPERATOR_PASS   people and scripts running the herald CLI",
    "# Topics with a `subject` of their own outside herald.> need it added to the node role's publish list.",
    "# Generated by `npm run permissions` from runtime/nats/permissions.ts; do not edit by hand.",
    "",
  ].join("\n");
  return (
    header +
    authorizationBlock(
      [
        { user: "herald-node", password: "$HERALD_NODE_PASS", role: "node" },
        { user: "herald-publisher", password: "$HERALD_PUBLISHER_PASS", role: "publisher" },
        { user: "herald-operator", password: "$HERALD_OPERATOR_PASS", role: "operator" },
      ],
      prefix,
    )
  );
}
