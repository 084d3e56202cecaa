/**
 * The namespace network of runtime/testing/netns.ts: hosts reachable from the root namespace and
 * from each other, a cut host unreachable (but reaching itself), a healed one reachable again,
 * and nothing of ours left after destroy, nor after a run that died without cleaning up.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { canUseNetns, createNetns, type NetnsNetwork } from "../runtime/testing/index.js";
import { waitFor } from "./helpers/nats.js";

const run = promisify(execFile);
const skipReason = await canUseNetns();
if (skipReason !== undefined) console.log(`netns: SKIPPED, network namespaces unavailable: ${skipReason}`);

const PORT = 4000;
let network: NetnsNetwork | undefined;
let server: ChildProcess | undefined;

afterEach(async () => {
  server?.kill("SIGKILL");
  await network?.destroy();
  network = server = undefined;
});

/** "hi" when host:PORT answers, else why not ("timeout", "ECONNREFUSED"). */
function probe(host: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: PORT });
    s.setTimeout(timeoutMs, () => (s.destroy(), resolve("timeout")));
    s.on("data", (d) => (s.destroy(), resolve(String(d))));
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** The same probe run from inside host i's namespace. */
async function probeFrom(n: NetnsNetwork, i: number, host: string): Promise<string> {
  const script = `const s=require("net").connect(${PORT},"${host}");s.setTimeout(1000,()=>{console.log("timeout");process.exit()});s.on("data",d=>{console.log(String(d));process.exit()});s.on("error",e=>{console.log(e.code);process.exit()})`;
  const [cmd, ...args] = n.exec(i);
  return (await run(cmd!, [...args, process.execPath, "-e", script])).stdout.trim();
}

async function ours(): Promise<string[]> {
  const ns = (await run("ip", ["netns", "list"])).stdout;
  const links = (await run("ip", ["-o", "link", "show"])).stdout;
  return [...ns.split("\n"), ...links.split("\n")].filter((l) => /hrld-/.test(l) && !/hrld-probe/.test(l)).map((l) => l.trim());
}

describe.skipIf(skipReason !== undefined)("netns", () => {
  it("hosts reach each other over the bridge; a cut host is unreachable but reaches itself; healed, it is back", async () => {
    const n = (network = await createNetns(3));
    const h2 = n.hosts[1]!;
    const [cmd, ...args] = n.exec(2);
    server = spawn(cmd!, [...args, process.execPath, "-e", `require("net").createServer((s)=>s.end("hi")).listen(${PORT},"${h2.ip}")`], { stdio: "ignore" });
    await waitFor(async () => (await probe(h2.ip)) === "hi", { timeoutMs: 10_000, what: "the server on host 2" });
    expect(await probeFrom(n, 1, h2.ip)).toBe("hi");

    await n.cutHost(2);
    expect(await probe(h2.ip)).toBe("timeout");
    expect(await probeFrom(n, 1, h2.ip)).toBe("timeout");
    expect(await probeFrom(n, 2, h2.ip)).toBe("hi");

    await n.healHost(2);
    await waitFor(async () => (await probe(h2.ip)) === "hi", { timeoutMs: 10_000, what: "host 2 after the heal" });
  });

  it("destroy kills what runs inside and leaves nothing of ours; a dead run's network goes at the next create", async () => {
    const n = await createNetns(2);
    const [cmd, ...args] = n.exec(1);
    const inside = spawn(cmd!, [...args, process.execPath, "-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const gone = new Promise((r) => inside.once("exit", r));
    await waitFor(async () => (await run("ip", ["netns", "pids", n.hosts[0]!.ns])).stdout.trim() !== "", { timeoutMs: 5000, what: "the process in host 1" });
    await n.destroy();
    await gone;
    expect((await ours()).filter((l) => l.includes(`hrld-${n.id}-`) || l.includes(`hrld-br${n.id}:`))).toEqual([]);

    // A leftover: a bridge and a namespace of a run whose process is gone (pid 2^22 + 1 cannot exist).
    await run("ip", ["link", "add", "hrld-br251", "type", "bridge"]);
    await run("ip", ["link", "set", "hrld-br251", "alias", `hrld pid=${2 ** 22 + 1}`]);
    await run("ip", ["netns", "add", "hrld-251-h1"]);
    network = await createNetns(2);
    expect((await ours()).filter((l) => l.includes("hrld-251-") || l.includes("hrld-br251:"))).toEqual([]);
  });
});
