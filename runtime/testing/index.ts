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
export { HOSTS_CLIENT, HostCluster } from "./hosts.js";
export type { HostClusterOptions } from "./hosts.js";
export { canUseNetns, createNetns } from "./netns.js";
export type { NetnsHost, NetnsNetwork } from "./netns.js";
export type { NatsHost } from "./temp-nats-cluster.js";
