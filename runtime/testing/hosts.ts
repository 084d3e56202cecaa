/**
 * A Herald cluster on several hosts for fault tests: three network namespaces (netns.ts), each
 * running one nats-server of a three-server JetStream cluster and one Herald node, with every
 * stream and bucket replicated on all three (`nats.replicas: 3`). A node's `nats.servers` lists
 * its own host's server first, as a node deployed beside its server would.
 *
 * Nodes are LocalCluster nodes (the launcher's pipe stops them when the test process dies) run
 * through `ip netns exec`; servers are run through `ip netns exec … setpriv --pdeathsig KILL`, so
 * the kernel kills them when the test process dies, however it dies.
 */
import type { ConnectionOptions } from "@nats-io/transport-node";
import type { NatsServerHandle } from "../nats/server.js";
import { LocalCluster, type LocalClusterOptions } from "./local-cluster.js";
import { createNetns, type NetnsNetwork } from "./netns.js";

/**
 * Server config for a network where links go down without a reset: dead peers (routes and
 * clients) are noticed after ping_interval × ping_max instead of the default two minutes × 2.
 */
const FAST_PING = "ping_interval: \"1s\"\nping_max: 3\n";
/** The harness's connections notice a cut-off server as fast as the servers do. */
export const HOSTS_CLIENT: Partial<ConnectionOptions> = { pingInterval: 1000, maxPingOut: 2, timeout: 2000, reconnectTimeWait: 100, maxReconnectAttempts: -1 };

export type HostClusterOptions = Omit<LocalClusterOptions, "nodes" | "natsCluster" | "nodeLaunch" | "runtime" | "proxied" | "skew">;

export class HostCluster {
  private constructor(
    readonly net: NetnsNetwork,
    readonly cluster: LocalCluster,
  ) {}

  /** Creates the network, starts the servers, writes the config; nodes are not started yet. */
  static async start(opts: HostClusterOptions = {}): Promise<HostCluster> {
    const net = await createNetns(3);
    try {
      const urls = net.hosts.map((h) => `nats://${h.ip}:4222`);
      const cluster = await LocalCluster.start({
        ...opts,
        nodes: 3,
        natsConfig: `${FAST_PING}${opts.natsConfig ?? ""}`,
        natsCluster: {
          size: 3,
          replicas: 3,
          hosts: net.hosts.map((h) => ({ ip: h.ip, launcher: [...net.exec(h.index), "setpriv", "--pdeathsig", "KILL"] })),
        },
        nodeLaunch: (name) => {
          const i = hostOf(name);
          return { launcher: net.exec(i), servers: [urls[i - 1]!, ...urls.filter((_, j) => j !== i - 1)] };
        },
        harness: { ...HOSTS_CLIENT, ...opts.harness },
      });
      return new HostCluster(net, cluster);
    } catch (err) {
      await net.destroy();
      throw err;
    }
  }

  /** Every server's client URL, comma-separated (for publishers and sinks in the root namespace). */
  get url(): string {
    return this.cluster.nats.url;
  }

  /** Node of host i (1-based): `n<i>`. */
  node(i: number): string {
    return `n${i}`;
  }

  server(i: number): NatsServerHandle {
    const s = this.cluster.nats.servers[i - 1];
    if (!s) throw new Error(`no host ${i}`);
    return s;
  }

  startNodes(): void {
    this.cluster.startAll();
  }

  /** SIGKILLs host i's nats-server (its store stays, for {@link restartNats}). */
  killNats(i: number): Promise<void> {
    return this.server(i).kill();
  }

  /** Starts host i's nats-server again on its address and store. */
  restartNats(i: number): Promise<void> {
    return this.server(i).restart();
  }

  killNode(i: number): Promise<void> {
    return this.cluster.kill(this.node(i), "SIGKILL");
  }

  startNode(i: number): void {
    this.cluster.startNode(this.node(i));
  }

  /** Takes host i off the network: its server and node run on, unreachable. */
  cut(i: number): Promise<void> {
    return this.net.cutHost(i);
  }

  heal(i: number): Promise<void> {
    return this.net.healHost(i);
  }

  /** The host node `name` runs on. */
  hostOf(name: string): number {
    return hostOf(name);
  }

  /** Stops nodes and servers, then removes the network. Idempotent. */
  async stop(): Promise<void> {
    try {
      await this.cluster.stop();
    } finally {
      await this.net.destroy();
    }
  }
}

function hostOf(node: string): number {
  const i = Number(/^n(\d+)$/.exec(node)?.[1]);
  if (!(i >= 1 && i <= 3)) throw new Error(`node ${node} is on no host (host nodes are n1..n3)`);
  return i;
}
