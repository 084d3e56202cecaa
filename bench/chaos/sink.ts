/**
 * The sink of a chaos run: counts, per message id, what Herald pushed on a subject.
 *
 * Two views of the same subject. A JetStream stream captures it, so a push the server accepted is
 * counted even while our own connection is down (a broker restart disconnects every client, and a
 * pusher may reconnect and push before we have re-subscribed: core NATS drops that push for us,
 * not for Herald). A core subscription sees every delivery while connected, duplicates within the
 * stream's dedup window included. Per id the larger of the two counts is taken. On a NATS cluster,
 * a third view: one core subscription pinned to each server (no failover to the others), so a push
 * made on a server that stayed up is seen there even while the capture stream has no leader and
 * our main connection is moving; it counts an id as delivered, never as a duplicate.
 */
import { DeliverPolicy, jetstream, jetstreamManager, StorageType, type ConsumerMessages } from "@nats-io/jetstream";
import { connect, nanos, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";

/** The shortest dedup window nats-server accepts: pushes of one id closer than this count once in the stream. */
const MIN_DUPLICATE_WINDOW_MS = 100;

export class Sink {
  /** Deliveries per id, as the capture stream recorded them. */
  private readonly stored = new Map<string, number>();
  /** Deliveries per id, as the core subscription saw them. */
  private readonly live = new Map<string, number>();
  /** Ids seen by the subscriptions pinned to one server each. */
  private readonly pinnedSeen = new Set<string>();
  private readonly pinned: NatsConnection[] = [];
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private reading: Promise<void> = Promise.resolve();

  private constructor(
    private readonly nc: NatsConnection,
    readonly subject: string,
    readonly stream: string,
  ) {}

  /** Creates the capture stream (file storage: it must survive a broker restart) and starts counting. */
  static async start(
    servers: string,
    subject: string,
    opts: { stream?: string; replicas?: number; connection?: Partial<ConnectionOptions> } = {},
  ): Promise<Sink> {
    const stream = opts.stream ?? "CHAOS_SINK";
    const nc = await connect({ servers, name: "chaos-sink", maxReconnectAttempts: -1, reconnectTimeWait: 100, ...opts.connection });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      duplicate_window: nanos(MIN_DUPLICATE_WINDOW_MS),
      // On a JetStream cluster, replicated like Herald's own streams: a server down must not blind the count.
      num_replicas: opts.replicas ?? 1,
    });
    const sink = new Sink(nc, subject, stream);
    nc.subscribe(subject, {
      callback: (err, m) => {
        if (!err) bump(sink.live, idOf(m.headers?.get("Herald-Id"), m.data));
      },
    });
    await nc.flush();
    const urls = servers.split(",").filter((u) => u !== "");
    if (urls.length > 1) {
      for (const url of urls) {
        const pc = await connect({ ...opts.connection, servers: [url], name: "chaos-sink-pinned", maxReconnectAttempts: -1, reconnectTimeWait: 100, ignoreClusterUpdates: true });
        pc.subscribe(subject, {
          callback: (err, m) => {
            const id = err ? undefined : idOf(m.headers?.get("Herald-Id"), m.data);
            if (id !== undefined) sink.pinnedSeen.add(id);
          },
        });
        await pc.flush();
        sink.pinned.push(pc);
      }
    }
    sink.reading = sink.read();
    return sink;
  }

  /** Reads the stream with an ordered consumer, which resets itself across reconnects. */
  private async read(): Promise<void> {
    const js = jetstream(this.nc);
    let lastSeq = 0;
    while (!this.stopping) {
      try {
        // A fresh consumer from where we stopped: an ordered consumer cannot consume twice.
        const consumer = await js.consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 });
        this.messages = await consumer.consume();
        for await (const m of this.messages) {
          lastSeq = m.seq;
          bump(this.stored, idOf(m.headers?.get("Herald-Id"), m.data));
        }
      } catch {
        // Fails while the server is away; retried below.
      }
      if (!this.stopping) await new Promise((r) => setTimeout(r, 250));
    }
  }

  has(id: string): boolean {
    return this.stored.has(id) || this.live.has(id) || this.pinnedSeen.has(id);
  }

  /** Distinct ids delivered. */
  unique(): number {
    let n = this.stored.size;
    for (const id of this.live.keys()) if (!this.stored.has(id)) n++;
    for (const id of this.pinnedSeen) if (!this.stored.has(id) && !this.live.has(id)) n++;
    return n;
  }

  /** Deliveries beyond the first, per id the larger of the two views. */
  duplicates(): number {
    let dup = 0;
    for (const id of new Set([...this.stored.keys(), ...this.live.keys()])) {
      dup += Math.max(this.stored.get(id) ?? 0, this.live.get(id) ?? 0) - 1;
    }
    return dup;
  }

  /** Ids the stream captured that the core subscription never saw (pushed while we were reconnecting). */
  missedLive(): number {
    let n = 0;
    for (const id of this.stored.keys()) if (!this.live.has(id)) n++;
    return n;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.messages?.stop();
    await this.nc.close().catch(() => undefined);
    await Promise.all(this.pinned.map((pc) => pc.close().catch(() => undefined)));
    await this.reading.catch(() => undefined);
  }
}

function bump(counts: Map<string, number>, id: string | undefined): void {
  if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
}

/** The nats channel sets `Herald-Id`; the JSON body's `id` is the fallback. */
function idOf(header: string | undefined, data: Uint8Array): string | undefined {
  if (header) return header;
  try {
    const id = (JSON.parse(new TextDecoder().decode(data)) as { id?: unknown }).id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}
