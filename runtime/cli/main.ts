#!/usr/bin/env node
/**
 * The `herald` command. Errors a user can fix are one line on stderr and exit code 1; usage
 * errors exit 2; anything else is a bug and shows its stack.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "../config/index.js";
import { HeraldError } from "../errors.js";
import { heraldVersion } from "../platform/repo.js";
import { NatsServerMissingError, NatsServerStartError } from "../nats/server.js";

export const HELP = `herald — message-push cluster runtime on NATS

Usage:
  herald start  [-c FILE] [--node NAME]      start every node of the config (and the embedded
                                             nats-server), or with --node that node alone
  herald status [-c FILE] [--json] [--watch [--interval S]]
                                             cluster status from the supervisors and the registry;
                                             --watch: again every S seconds (default 2) until
                                             Ctrl-C, redrawn in place on a terminal (piped: one
                                             status after another; with --json, one line each)
  herald doctor [-c FILE] [--json]           check the deployment: login, server version and
                                             JetStream, replicas vs cluster size, durability, auth,
                                             max_payload, storage, streams; ok / warn / fail with
                                             the fix (exit 1 on any fail)
  herald stop   [-c FILE] [--node NAME]      set isStopServer: the node (or every node) drains and exits
  herald publish TOPIC [--data JSON | --file F] [--to RECIPIENT] [--id ID]
                       [--at TIME | --in DURATION]
                                             submit a message (data: a JSON object, default {});
                                             prints its id once it is durably queued (--id: your
                                             own id; an id already queued is not queued again);
                                             --at: deliver at TIME (ISO 8601 with Z or an offset,
                                             or ms since the epoch), --in: after DURATION (90s,
                                             5m, 1500ms, 2h), both on the NATS server's clock
  herald scheduled list [--topic T] [--json] [--limit N]
                                             scheduled messages not yet delivered, due first
                                             (default limit 100): id, topic, due time, recipient
  herald scheduled cancel ID [--topic T]     cancel a scheduled message (refused within 1 s of
                                             its time, or once delivered)
  herald watch TOPIC [--count N]             print what the nats channel pushes for TOPIC, one JSON
                                             line each, until Ctrl-C (or N messages)
  herald rules get [--topic T] [--json]      the retrieval rules of topic T (or the default)
  herald rules set [--topic T] (--json '{…}' | --file F)
                                             merge the given fields over the stored rules (a null
                                             field is removed); refused with the reason if invalid
  herald pause  [--topic T]                  pause retrieval of topic T (or of all topics); ingest
                                             continues and messages wait in the queue
  herald resume [--topic T]                  resume retrieval of topic T (or of all topics)
  herald dlq list [--topic T] [--json] [--limit N]
                                             dead letters, oldest first (default limit 100), with
                                             their reasons: invalid, unknown-topic, render, rejected,
                                             exhausted, poison, too-large
  herald dlq replay ID… | --all [--topic T]  put dead letters back on the queue, attempts reset
                                             (poison, unknown-topic and too-large letters: their kept
                                             original, as it came)
  herald dlq purge [--topic T]               delete the dead letters (of topic T, or all)
  herald recipients set ID (--json '{"email":[…],"webpush":[…],"apns":[…],"fcm":[…]}' | --file F)
                                             store recipient ID's addresses (replacing its old ones);
                                             a message's --to ID then reaches them
  herald recipients get ID [--json]          a recipient's addresses
  herald recipients rm ID                    remove a recipient
  herald recipients token ID [--revoke]      issue a token that reads ID's sse streams (printed
                                             once), or withdraw all of ID's tokens
  herald ratelimit get|clear TOPIC           the topic's cluster-wide rate limit, or remove it
  herald ratelimit set TOPIC --per-second N [--burst N]
                                             at most N pushes per second across every node (bursts
                                             of --burst, default N rounded up); within a second
  herald endpoints list [--json]             the circuit breakers: closed, open, half-open, disabled
  herald endpoints enable|disable ENDPOINT|TOPIC
                                             close a breaker (its messages are pushed again), or
                                             hold the endpoint's messages until enabled
  herald fault crash-actor --node NAME --actor ID
                                             fault drill: that actor's thread dies abruptly
  herald fault hang-actor --node NAME --actor ID
                                             fault drill: that actor's thread stops answering
                                             (drills are refused unless the config sets
                                             "faultInjection": true)
  herald help                                this text
  herald --version                           the version

Options:
  -c, --config FILE   cluster config (default ./cluster.config.json)
  --server URL        NATS server(s), comma-separated (default: NATS_URL, then the config;
                      herald start --node: instead of the config's nats.servers)
  --topic T           one topic (rules, pause, resume, dlq, scheduled); without it: the default
                      rules, all topics, every dead letter, every scheduled message
  -h, --help          this text

Environment:
  NATS_URL            NATS server(s) when --server is not given (nats://user:pass@host works)
  NATS_USER, NATS_PASSWORD
                      log in as this user (NATS_USER alone: a token); over nats.auth
  NATS_CREDS, NATS_NKEY
                      log in with this .creds file or NKey seed file; over nats.auth
  NATS_CA, NATS_CERT, NATS_KEY
                      TLS: CA certificate, client certificate and key files; over nats.tls
  HERALD_LOG          log level: debug, info (default), warn, error
  HERALD_LAUNCHER_PIPE
                      internal: set by herald start for the nodes it starts (their stdin is its pipe)

Stopping herald start (without --node):
  Ctrl-C, SIGTERM, SIGHUP
                      every node drains and exits, then the embedded nats-server stops
  SIGKILL (kill -9)   the same, without the launcher: each node drains when the launcher's pipe
                      closes, and a watchdog stops the server after them; a new herald start of
                      the config waits for them to finish, then starts (while the launcher runs,
                      a second one is refused)
`;

const common = {
  config: { type: "string", short: "c" },
  server: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies ParseArgsConfig["options"];

const topic = { topic: { type: "string" } } satisfies ParseArgsConfig["options"];

/** Options of each command; `rules` and `dlq` are keyed with their action, which decides the options. */
const commands: Record<string, { options: ParseArgsConfig["options"]; positionals: number }> = {
  start: { options: { ...common, node: { type: "string" } }, positionals: 0 },
  status: { options: { ...common, json: { type: "boolean" }, watch: { type: "boolean" }, interval: { type: "string" } }, positionals: 0 },
  doctor: { options: { ...common, json: { type: "boolean" } }, positionals: 0 },
  stop: { options: { ...common, node: { type: "string" } }, positionals: 0 },
  fault: { options: { ...common, node: { type: "string" }, actor: { type: "string" } }, positionals: 1 },
  publish: {
    options: {
      ...common,
      data: { type: "string" },
      file: { type: "string" },
      to: { type: "string" },
      id: { type: "string" },
      at: { type: "string" },
      in: { type: "string" },
    },
    positionals: 1,
  },
  watch: { options: { ...common, count: { type: "string" } }, positionals: 1 },
  "rules get": { options: { ...common, ...topic, json: { type: "boolean" } }, positionals: 0 },
  // Here --json takes the rule's fields: `herald rules set --json '{"primary":"lifo"}'`.
  "rules set": { options: { ...common, ...topic, json: { type: "string" }, file: { type: "string" } }, positionals: 0 },
  pause: { options: { ...common, ...topic }, positionals: 0 },
  resume: { options: { ...common, ...topic }, positionals: 0 },
  "dlq list": { options: { ...common, ...topic, json: { type: "boolean" }, limit: { type: "string" } }, positionals: 0 },
  "dlq replay": { options: { ...common, ...topic, all: { type: "boolean" } }, positionals: Infinity },
  "dlq purge": { options: { ...common, ...topic }, positionals: 0 },
  "recipients set": { options: { ...common, json: { type: "string" }, file: { type: "string" } }, positionals: 1 },
  "recipients get": { options: { ...common, json: { type: "boolean" } }, positionals: 1 },
  "recipients rm": { options: { ...common }, positionals: 1 },
  "recipients token": { options: { ...common, revoke: { type: "boolean" } }, positionals: 1 },
  "ratelimit get": { options: { ...common, json: { type: "boolean" } }, positionals: 1 },
  "ratelimit set": { options: { ...common, "per-second": { type: "string" }, burst: { type: "string" } }, positionals: 1 },
  "ratelimit clear": { options: { ...common }, positionals: 1 },
  "endpoints list": { options: { ...common, json: { type: "boolean" } }, positionals: 0 },
  "endpoints enable": { options: { ...common }, positionals: 1 },
  "endpoints disable": { options: { ...common }, positionals: 1 },
  "scheduled list": { options: { ...common, ...topic, json: { type: "boolean" }, limit: { type: "string" } }, positionals: 0 },
  "scheduled cancel": { options: { ...common, ...topic }, positionals: 1 },
};

/** Commands whose first argument is an action with options of its own. */
const actions: Record<string, string[]> = { rules: ["get", "set"], dlq: ["list", "replay", "purge"], recipients: ["set", "get", "rm", "token"],
  scheduled: ["list", "cancel"],
  ratelimit: ["get", "set", "clear"],
  endpoints: ["list", "enable", "disable"],
};

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || isHelp(command)) {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === "--version" || command === "-v" || command === "version") {
    process.stdout.write(`herald ${heraldVersion()}\n`);
    return 0;
  }
  let rest = args;
  let name = command;
  let action: string | undefined;
  const known = actions[command];
  if (known) {
    action = args[0];
    if (action !== undefined && isHelp(action)) {
      process.stdout.write(HELP);
      return 0;
    }
    if (action === undefined || !known.includes(action)) {
      const shown = action === undefined ? "no action" : `unknown action "${action}"`;
      throw new HeraldError("USAGE", `herald ${command}: ${shown}: use ${known.map((a) => `"herald ${command} ${a}"`).join(", ")}`);
    }
    name = `${command} ${action}`;
    rest = args.slice(1);
  }
  const spec = commands[name];
  if (!spec) throw new HeraldError("USAGE", `unknown command "${command}": run "herald help" for the list`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: spec.options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new HeraldError("USAGE", `herald ${name}: ${(err as Error).message.split("\n")[0]}`);
  }
  const flags = parsed.values as Record<string, string | boolean | undefined>;
  if (flags.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (parsed.positionals.length > spec.positionals) {
    throw new HeraldError("USAGE", `herald ${name}: unexpected argument "${parsed.positionals[spec.positionals]}"`);
  }
  // Each command's module is loaded when it runs: a node process (`start`) does not carry the
  // rest of the CLI in memory.
  switch (command) {
    case "start":
      return (await import("./commands/start.js")).startCommand(flags);
    case "status":
      return (await import("./commands/status.js")).statusCommand(flags);
    case "doctor":
      return (await import("./commands/doctor.js")).doctorCommand(flags);
    case "stop":
      return (await import("./commands/stop.js")).stopCommand(flags);
    case "fault":
      return (await import("./commands/fault.js")).faultCommand(parsed.positionals[0], flags);
    case "publish":
      return (await import("./commands/publish.js")).publishCommand(parsed.positionals[0], flags);
    case "watch":
      return (await import("./commands/watch.js")).watchCommand(parsed.positionals[0], flags);
    case "rules":
      return (await import("./commands/rules.js")).rulesCommand(action, flags);
    case "pause":
    case "resume":
      return (await import("./commands/pause.js")).pauseCommand(flags, command === "resume");
    case "dlq":
      return (await import("./commands/dlq.js")).dlqCommand(action, parsed.positionals, flags);
    case "recipients":
      return (await import("./commands/recipients.js")).recipientsCommand(action, parsed.positionals[0], flags);
    case "ratelimit":
      return (await import("./commands/delivery.js")).rateLimitCommand(action, parsed.positionals[0], flags);
    case "endpoints":
      return (await import("./commands/delivery.js")).endpointsCommand(action, parsed.positionals[0], flags);
    case "scheduled":
      return (await import("./commands/scheduled.js")).scheduledCommand(action, parsed.positionals, flags);
  }
  return 2;
}

function isHelp(arg: string): boolean {
  return arg === "help" || arg === "--help" || arg === "-h";
}

/** Errors the user can act on: printed as their message alone. */
function isUserError(err: unknown): err is Error {
  if (err instanceof HeraldError) return err.userError;
  return err instanceof ConfigError || err instanceof NatsServerMissingError || err instanceof NatsServerStartError;
}

// A closed stdout or stderr (`herald status | head`, a parent that went away) is not an error of
// ours: writes to it are dropped instead of raising EPIPE as an uncaught error.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A stopped node or launcher is done: leftover handles (sockets closing, timers) must not
    // keep the process around after it has drained.
    if (process.argv[2] === "start") process.exit(code);
  },
  (err: unknown) => {
    if (isUserError(err)) {
      process.stderr.write(`herald: ${err.message}\n`);
      process.exitCode = err instanceof HeraldError && err.code === "USAGE" ? 2 : 1;
    } else {
      process.stderr.write(`herald: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
    // A node that failed to start may still hold sockets and timers: it is done all the same.
    if (process.argv[2] === "start") process.exit(process.exitCode);
  },
);
