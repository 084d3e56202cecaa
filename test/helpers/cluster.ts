/** Test clusters: see runtime/testing/local-cluster.ts. */
export { CLI, DENO, LocalCluster as TestCluster, runCli } from "../../runtime/testing/local-cluster.js";
export type { ClusterEvent, LocalClusterOptions as TestClusterOptions, NodeProc } from "../../runtime/testing/local-cluster.js";

import type { ClusterStatus } from "../../runtime/supervisor/status.js";

/** Every node alive with all its actors running. */
export const allRunning = (s: ClusterStatus): boolean =>
  s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running"));
