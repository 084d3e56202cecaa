/**
 * The two recovery times of the runtime, over several trials on a local 4-node cluster with the
 * shipped heartbeat defaults (500 ms / 2000 ms):
 *   - master failover: SIGKILL of the master's process → another node announces master.acquired;
 *   - actor respawn: fault-drill crash of an actor → its supervisor announces it running again.
 */
import { decode, encode } from "../../runtime/codec/index.js";
import { LocalCluster, waitFor, type ClusterEvent } from "../../runtime/testing/index.js";
import { log, spread, type Spread } from "./stats.js";

export interface RecoveryResult {
  heartbeat: { intervalMs: number; timeoutMs: number };
  failoverMs: Spread;
  respawnMs: Spread;
}

async function nextEvent(c: LocalCluster, from: number, pred: (e: ClusterEvent) => boolean, what: string) {
  return (await waitFor(() => c.events.slice(from).find(pred), { timeoutMs: 30_000, intervalMs: 2, what }))!;
}

export async function recovery(trials: number, intervalMs = 500, timeoutMs = 2000): Promise<RecoveryResult> {
  const c = await LocalCluster.start({
    nodes: 4,
    intervalMs,
    timeoutMs,
    actors: { ingest: 1, collector: 1, subqueue: 1, processor: 1, pusher: 1 },
  });
  const failover: number[] = [];
  const respawn: number[] = [];
  try {
    c.startAll();
    await c.waitStatus("4 nodes up", (s) => s.nodes.every((n) => n.state === "alive") && s.master?.node === "n1", 60_000);
    for (let t = 0; t < trials; t++) {
      const master = (await c.status()).master!.node!;
      const mark = c.events.length;
      const t0 = performance.now();
      await c.kill(master);
      const e = await nextEvent(c, mark, (x) => x.type === "master.acquired" && x.node !== master, "a new master");
      failover.push(performance.now() - t0);
      log(`    failover ${t + 1}/${trials}: ${master} → ${e.node} (epoch ${e.epoch}) in ${Math.round(failover.at(-1)!)} ms`);
      c.startNode(master);
      await c.waitStatus(`${master} back`, (st) => st.nodes.every((n) => n.state === "alive" && n.actors.every((a) => a.state === "running")), 60_000);
    }
    for (let t = 0; t < trials; t++) {
      const node = `n${(t % 4) + 1}`;
      const mark = c.events.length;
      const t0 = performance.now();
      const msg = await c.nc.request(`herald.ctl.${node}`, encode({ cmd: "crash-actor", actor: "processor-0" }), { timeout: 5000 });
      const reply = decode<{ ok: boolean; error?: string }>(msg.data);
      if (!reply.ok) throw new Error(reply.error);
      await nextEvent(c, mark, (x) => x.type === "actor.running" && x.node === node && x.actor === "processor-0", "respawn");
      respawn.push(performance.now() - t0);
      log(`    respawn ${t + 1}/${trials}: ${node}/processor-0 in ${Math.round(respawn.at(-1)!)} ms`);
    }
  } finally {
    await c.stop();
  }
  return { heartbeat: { intervalMs, timeoutMs }, failoverMs: spread(failover), respawnMs: spread(respawn) };
}
