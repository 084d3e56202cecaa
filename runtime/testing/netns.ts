/**
 * A network of hosts for tests, made of Linux network namespaces: a bridge `hrld-br<N>` in the
 * root namespace at 10.213.<N>.1/24, and per host a namespace `hrld-<N>-h<i>` joined to it by a
 * veth pair (host side 10.213.<N>.<10+i>/24, lo up). The test process stays in the root namespace
 * and reaches every host over the bridge; the hosts reach each other the same way. Cutting a host
 * off is `ip link set <root side> down`: its packets go nowhere, no connection is reset, just as
 * when a cable is pulled, and the host still reaches itself.
 *
 * Needs root and `ip` (iproute2). Everything is named with the `hrld-` prefix and this process's
 * N; `destroy()` is idempotent, and a new network first removes the leftovers of runs whose
 * process is gone (a SIGKILLed test run cannot clean up after itself).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const IP = "ip";
/** Only names of ours: `hrld-<N>-h<i>` namespaces, `hrld-br<N>` bridges, `hrld-<N>v<i>` veths. */
const OUR_NS = /^hrld-(\d+)-h\d+$/;
const OUR_BRIDGE = /^hrld-br(\d+)$/;
/** Networks 10.213.<N>.0/24 this module may use. */
const NETWORKS = 250;

export interface NetnsHost {
  /** 1-based. */
  index: number;
  /** Namespace name, for `ip netns exec`. */
  ns: string;
  /** The host's address on the bridge. */
  ip: string;
  /** The veth end in the root namespace (cut here). */
  rootLink: string;
}

export interface NetnsNetwork {
  /** This network's number N. */
  id: number;
  bridge: string;
  /** The root namespace's address on the bridge. */
  gateway: string;
  hosts: NetnsHost[];
  /** `ip netns exec <ns>`: the prefix that runs a command on host i (1-based). */
  exec(i: number): string[];
  /** Takes host i off the network (its root-side link down). */
  cutHost(i: number): Promise<void>;
  /** Puts host i back on the network. */
  healHost(i: number): Promise<void>;
  /** Kills whatever still runs in the namespaces and removes them, the veths and the bridge. Idempotent. */
  destroy(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  return (await run(IP, args, { timeout: 10_000 })).stdout;
}

/**
 * Why namespaces cannot be used here, or undefined when they can: not root, no `ip`, or
 * `ip netns add` refused (a container without CAP_SYS_ADMIN).
 */
export async function canUseNetns(): Promise<string | undefined> {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "network namespaces need root (run as root, e.g. in CI)";
  try {
    await ip("-V");
  } catch {
    return "the `ip` command (iproute2) is missing";
  }
  const probe = `hrld-probe-${process.pid}`;
  try {
    await ip("netns", "add", probe);
  } catch (err) {
    return `\`ip netns add\` failed: ${(err as { stderr?: string }).stderr?.trim() || String(err)}`;
  } finally {
    await ip("netns", "del", probe).catch(() => undefined);
  }
  return undefined;
}

/** Creates a network of `size` hosts on an unused N. Cleans up after itself if a step fails. */
export async function createNetns(size = 3): Promise<NetnsNetwork> {
  await removeLeftovers();
  const used = await usedIds();
  // Spread by pid so concurrent runs rarely try the same N; `ip link add` refuses a taken name.
  for (let k = 0; k < NETWORKS; k++) {
    const id = 1 + ((process.pid + k) % NETWORKS);
    if (used.has(id)) continue;
    try {
      await ip("link", "add", `hrld-br${id}`, "type", "bridge");
      await ip("link", "set", `hrld-br${id}`, "alias", `hrld pid=${process.pid}`);
    } catch {
      continue;
    }
    const net = network(id, size);
    try {
      await build(net);
      return net;
    } catch (err) {
      await net.destroy();
      throw err;
    }
  }
  throw new Error("no free 10.213.<N>.0/24 network for a namespace test network");
}

function network(id: number, size: number): NetnsNetwork {
  const hosts = Array.from({ length: size }, (_, k) => ({
    index: k + 1,
    ns: `hrld-${id}-h${k + 1}`,
    ip: `10.213.${id}.${11 + k}`,
    rootLink: `hrld-${id}v${k + 1}`,
  }));
  const host = (i: number) => {
    const h = hosts[i - 1];
    if (!h) throw new Error(`no host ${i} (hosts are 1..${size})`);
    return h;
  };
  let destroying: Promise<void> | undefined;
  return {
    id,
    bridge: `hrld-br${id}`,
    gateway: `10.213.${id}.1`,
    hosts,
    exec: (i) => [IP, "netns", "exec", host(i).ns],
    cutHost: async (i) => void (await ip("link", "set", host(i).rootLink, "down")),
    healHost: async (i) => void (await ip("link", "set", host(i).rootLink, "up")),
    destroy: () => (destroying ??= removeNetwork(id)),
  };
}

async function build(net: NetnsNetwork): Promise<void> {
  await ip("addr", "add", `${net.gateway}/24`, "dev", net.bridge);
  await ip("link", "set", net.bridge, "up");
  for (const h of net.hosts) {
    const peer = `hrld-${net.id}p${h.index}`;
    await ip("netns", "add", h.ns);
    await ip("link", "add", h.rootLink, "type", "veth", "peer", "name", peer);
    await ip("link", "set", h.rootLink, "master", net.bridge);
    await ip("link", "set", h.rootLink, "up");
    await ip("link", "set", peer, "netns", h.ns);
    const inNs = (...args: string[]) => ip("-n", h.ns, ...args);
    await inNs("link", "set", "lo", "up");
    await inNs("link", "set", peer, "name", "eth0");
    await inNs("addr", "add", `${h.ip}/24`, "dev", "eth0");
    await inNs("link", "set", "eth0", "up");
  }
}

/** Kills the processes in network `id`'s namespaces, then removes them and the bridge. */
async function removeNetwork(id: number): Promise<void> {
  const namespaces = (await listNamespaces()).filter((ns) => OUR_NS.exec(ns)?.[1] === String(id));
  for (const ns of namespaces) {
    const pids = (await ip("netns", "pids", ns).catch(() => "")).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    // Deleting the namespace deletes its veth end, and with it the root end.
    await ip("netns", "del", ns).catch(() => undefined);
  }
  for (const link of (await listLinks()).filter((l) => l.startsWith(`hrld-${id}v`) || l === `hrld-br${id}`)) {
    await ip("link", "del", link).catch(() => undefined);
  }
}

/** Networks whose bridge was made by a process no longer running (the bridge's alias names it). */
async function removeLeftovers(): Promise<void> {
  for (const id of await usedIds()) {
    const owner = await ownerOf(id);
    if (owner !== undefined && (owner === process.pid || alive(owner))) continue;
    await removeNetwork(id);
  }
}

async function usedIds(): Promise<Set<number>> {
  const ids = new Set<number>();
  for (const ns of await listNamespaces()) {
    const m = OUR_NS.exec(ns);
    if (m) ids.add(Number(m[1]));
  }
  for (const link of await listLinks()) {
    const m = OUR_BRIDGE.exec(link);
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

/** The pid that made network `id`, from its bridge's alias (`hrld pid=<pid>`); undefined when it has none. */
async function ownerOf(id: number): Promise<number | undefined> {
  const out = await ip("-o", "link", "show", `hrld-br${id}`).catch(() => "");
  const m = /alias hrld pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function listNamespaces(): Promise<string[]> {
  const out = await ip("netns", "list").catch(() => "");
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith("hrld-"));
}

async function listLinks(): Promise<string[]> {
  const out = await ip("-o", "link", "show").catch(() => "");
  return out
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "")
    .filter((n) => n.startsWith("hrld-"));
}
