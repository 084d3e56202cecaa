/**
 * `herald start`: with --node, that node in this process (multi-host deployments); without, the
 * launcher (../launcher.ts): every node of the config as its own child process, plus the embedded
 * nats-server when configured.
 */
import { ConfigError, type LoadedConfig } from "../../config/index.js";
import { Renderer } from "../../../actors/processor/render.js";
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
    return runNode(loaded, flags.node);
  }
  return launchCluster(loaded, flags);
}

/** Templates parse only with the template engine, so the config loader cannot check them. */
function checkTemplates(loaded: LoadedConfig): void {
  const issues = new Renderer(loaded.config.topics)
    .templateErrors()
    .map((e) => ({ path: `topics.${e.topic}.template.${e.field}`, message: `does not parse: ${e.error}` }));
  if (issues.length > 0) throw ConfigError.fromIssues(issues, { shown: loaded.file, absolute: loaded.file });
}
