/**
 * `herald start`: with --node, that node in this process (multi-host deployments); without, the
 * launcher (../launcher.ts): every node of the config as its own child process, plus the embedded
 * nats-server when configured.
 */
import { ConfigError, type LoadedConfig } from "../../config/index.js";
import { Renderer } from "../../../actors/processor/render.js";
import { hasUserinfo } from "../../config/nats.js";
import { HeraldError } from "../../errors.js";
import { runNode } from "../../node/run-node.js";
import { loadFromFlags, type CommonFlags } from "../context.js";
import { launchCluster } from "../launcher.js";

export interface StartFlags extends CommonFlags {
  node?: string;
}

export async function startCommand(flags: StartFlags): Promise<number> {
  // The whole config is validated before anything starts, templates included.
  const loaded = await loadFromFlags(flags);
  checkTemplates(loaded);
  if (flags.node) {
    if (!loaded.config.nodes.some((n) => n.name === flags.node)) {
      const known = loaded.config.nodes.map((n) => n.name).join(", ");
      throw new HeraldError("USAGE", `no node named "${flags.node}" in ${loaded.file} (nodes: ${known})`);
    }
    return runNode(flags.server ? withServers(loaded, flags.server) : loaded, flags.node);
  }
  return launchCluster(loaded, flags);
}

/**
 * `--server URL[,URL…]` in place of the config's `nats.servers` (credentials stay in `nats.auth`:
 * one in a URL would be ignored by the client and shown in logs).
 */
function withServers(loaded: LoadedConfig, given: string): LoadedConfig {
  const servers = given.split(",").map((u) => u.trim()).filter((u) => u !== "");
  for (const u of servers) {
    if (hasUserinfo(u)) {
      throw new HeraldError("USAGE", "--server: credentials in a server URL are not used by a node: put them in nats.auth (or its env form) instead");
    }
  }
  if (servers.length === 0) throw new HeraldError("USAGE", "--server: no server URL given");
  return { ...loaded, config: { ...loaded.config, nats: { ...loaded.config.nats, servers } } };
}

/** Templates parse only with the template engine, so the config loader cannot check them. */
function checkTemplates(loaded: LoadedConfig): void {
  const issues = new Renderer(loaded.config.topics)
    .templateErrors()
    .map((e) => ({ path: `topics.${e.topic}${e.channel ? `.channels[${e.channel.index}]` : ""}.template.${e.field}`, message: `does not parse: ${e.error}` }));
  if (issues.length > 0) throw ConfigError.fromIssues(issues, { shown: loaded.file, absolute: loaded.file });
}
