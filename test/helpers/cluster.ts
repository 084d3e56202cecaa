/** Test clusters: see runtime/testing/local-cluster.ts. */
export { CLI, DENO, LocalCluster as TestCluster, runCli } from "../../runtime/testing/local-cluster.js";
export type { ClusterEvent, LocalClusterOptions as TestClusterOptions, NodeProc } from "../../runtime/testing/local-cluster.js";
