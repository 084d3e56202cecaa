/** Harnesses for tests, benchmarks and fault drills against real processes. */
export { CLI, DENO, LocalCluster, runCli } from "./local-cluster.js";
export type { ClusterEvent, LocalClusterOptions, NodeProc } from "./local-cluster.js";
export { startTcpProxy } from "./tcp-proxy.js";
export type { TcpProxy } from "./tcp-proxy.js";
export { startTempNats } from "./temp-nats.js";
export { startTempNatsCluster } from "./temp-nats-cluster.js";
export type { TempNatsCluster, TempNatsClusterOptions } from "./temp-nats-cluster.js";
export type { TempNats } from "./temp-nats.js";
export { waitFor } from "./wait.js";
export type { WaitForOptions } from "./wait.js";
