/**
 * The baseline: JetStream publish (acks in flight) and one durable consumer that acks — the least
 * any durable pipeline must do on this machine.
 */
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startTempNats } from "../../runtime/testing/index.js";
import { cpuWindow, percentiles, publishFullSpeed, type CpuPerMessage, type Latency } from "./stats.js";

export interface ThroughputResult extends Latency {
  msgsPerSec: number;
  /** CPU per message over the measured window, µs, by process group. */
  cpuUs?: CpuPerMessage;
}

export async function rawJetStream(count: number, inflight: number): Promise<ThroughputResult> {
  const nats = await startTempNats();
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "RAW", subjects: ["raw.>"] });
    await jsm.consumers.add("RAW", { durable_name: "c", ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    const consumer = await js.consumers.get("RAW", "c");
    const lat: number[] = [];
    const cpu = await cpuWindow({ nats: [nats.server.pid], herald: [] });
    const t0 = performance.now();
    const consumed = (async () => {
      const msgs = await consumer.consume({ max_messages: 1000 });
      for await (const m of msgs) {
        lat.push(Date.now() - m.time.getTime());
        m.ack();
        if (lat.length === count) break;
      }
    })();
    await publishFullSpeed(count, inflight, (i) => js.publish("raw.bench", JSON.stringify({ id: `r${i}`, data: { i } })));
    await consumed;
    const secs = (performance.now() - t0) / 1000;
    return { msgsPerSec: count / secs, ...percentiles(lat), cpuUs: await cpu.end(count) };
  } finally {
    await nc.close();
    await nats.stop();
  }
}
