/** Test clusters: see runtime/testing/local-cluster.ts. */
export { CLI, DENO, LocalCluster as TestCluster, runCli } from "../../runtime/testing/local-cluster.js";
export type { ClusterEvent, LocalClusterOptions as TestClusterOptions, NodeProc } from "../../runtime/testing/local-cluster.js";

import type { ClusterStatus } from "../../runtime/supervisor/status.js";

/** Every node alive with all its actors running. */
export const allRunning = (s: ClusterStatus): boolean =>
  s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));

/** A cluster started from `opts`, every node running (waited for with a deadline). */
export async function startRunning(opts: import("../../runtime/testing/local-cluster.js").LocalClusterOptions, timeoutMs = 60_000): Promise<import("../../runtime/testing/local-cluster.js").LocalCluster> {
  const { LocalCluster } = await import("../../runtime/testing/local-cluster.js");
  const cluster = await LocalCluster.start(opts);
  cluster.startAll();
  const n = typeof opts.nodes === "number" ? opts.nodes : 1;
  await cluster.waitStatus(`${n} node(s) running`, (s) => s.nodes.length === n && allRunning(s), timeoutMs);
  return cluster;
}

/** `herald …` against the cluster's config, expected to succeed; its stdout. */
export const okCli =
  (cluster: { cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>; configFile: string }) =>
  async (...args: string[]): Promise<string> => {
    const r = await cluster.cli([...args, "-c", cluster.configFile]);
    if (r.code !== 0) throw new Error(`herald ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
