import type { KV } from "@nats-io/kv";
import { errorText, HeraldError } from "../../errors.js";
import { monotonicNow } from "../../platform/index.js";
import { parseRecord } from "../../supervisor/registry.js";
import { openClusterBucket } from "../../nats/buckets.js";
import { connectCli, loadFromFlags, accessFor, type CommonFlags } from "../context.js";
import { names, nodeKey } from "../../names.js";

export interface StopFlags extends CommonFlags {
  node?: string;
}

/**
 * `herald stop [--node N]`: sets the node's `isStopServer` in the registry (the seed's remote
 * stop), then waits until the node has recorded `stopped`.
 */
export async function stopCommand(flags: StopFlags): Promise<number> {
  const loaded = await loadFromFlags(flags);
  const { config } = loaded;
  const targets = flags.node ? [flags.node] : config.nodes.map((n) => n.name);
  if (flags.node && !config.nodes.some((n) => n.name === flags.node)) {
    throw new HeraldError("USAGE", `no node named "${flags.node}" in ${loaded.file} (nodes: ${config.nodes.map((n) => n.name).join(", ")})`);
  }
  const nc = await connectCli(accessFor(flags, loaded));
  try {
    const kv = await openClusterBucket(nc, names(config.subjectPrefix).registryBucket, "registry");
    const requested: string[] = [];
    for (const node of targets) {
      const outcome = await requestStop(kv, node);
      if (outcome === "requested") requested.push(node);
      else process.stdout.write(`${node}: ${outcome}\n`);
    }
    const deadlineMs = config.supervisor.drainTimeoutMs + 2 * config.heartbeat.timeoutMs;
    let failures = 0;
    await Promise.all(
      requested.map(async (node) => {
        const ok = await waitStopped(kv, node, deadlineMs);
        if (!ok) failures++;
        process.stdout.write(ok ? `${node}: stopped\n` : `${node}: stop requested, but it did not record "stopped" within ${deadlineMs} ms\n`);
      }),
    );
    return failures === 0 ? 0 : 1;
  } finally {
    await nc.close();
  }
}

type StopOutcome = "requested" | "already stopped" | "not registered (never started)";

async function requestStop(kv: KV, node: string): Promise<StopOutcome> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get(nodeKey(node));
    const rec = entry ? parseRecord(entry) : undefined;
    if (!entry || !rec) return "not registered (never started)";
    if (rec.state === "stopped") return "already stopped";
    try {
      await kv.update(nodeKey(node), JSON.stringify({ ...rec, isStopServer: true }), entry.revision);
      return "requested";
    } catch {
      // The node beat in between: read again and retry.
    }
  }
  throw new HeraldError("STOP_FAILED", `could not set isStopServer for ${node}: its record kept changing`);
}

async function waitStopped(kv: KV, node: string, deadlineMs: number): Promise<boolean> {
  const start = monotonicNow();
  while (monotonicNow() - start < deadlineMs) {
    try {
      const entry = await kv.get(nodeKey(node));
      const rec = entry ? parseRecord(entry) : undefined;
      if (rec?.state === "stopped") return true;
    } catch (err) {
      process.stderr.write(`reading ${node}'s record failed: ${errorText(err)}\n`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
