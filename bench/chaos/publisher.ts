/**
 * A publisher at a steady offered load: JetStream publishes on a subject, each with its own id
 * (in the body and as `Nats-Msg-Id`), and the ids JetStream acknowledged recorded. A publish that
 * fails (timeout, broker restarting) counts as not acked and is not retried: only acked ids are
 * owed delivery, so the run measures exactly Herald's promise.
 */
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";

export interface PublisherOptions {
  /** NATS URL. */
  servers: string;
  /** e.g. `herald.in.demo`. */
  subject: string;
  /** Offered load, messages per second. */
  rate: number;
  /** Ids are `<idPrefix>-<n>`; distinct per run so reruns against one store cannot collide. */
  idPrefix: string;
  /** How long one publish waits for its ack, ms. @defaultValue 5000 */
  ackTimeoutMs?: number;
  /** Options of the publisher's connection (e.g. faster pings on hosts). */
  connection?: Partial<ConnectionOptions>;
}

/** The load generator tops up to `rate × elapsed` this often, ms. */
const TICK_MS = 10;

export class RatePublisher {
  /** Publish attempts made. */
  published = 0;
  /** Ids JetStream acknowledged, in the order the acks arrived. */
  readonly acked: string[] = [];
  /** Publishes that failed, by error message. */
  readonly failures = new Map<string, number>();
  /** When each failed publish was sent (performance.now()), in the order the failures came. */
  readonly failedSentAt: number[] = [];
  private readonly pending = new Set<Promise<void>>();
  private timer: ReturnType<typeof setInterval> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly opts: PublisherOptions,
  ) {}

  /** Connects (reconnecting forever: the broker restarts under us) and starts publishing. */
  static async start(opts: PublisherOptions): Promise<RatePublisher> {
    const nc = await connect({ servers: opts.servers, name: "chaos-publisher", maxReconnectAttempts: -1, reconnectTimeWait: 100, ...opts.connection });
    const p = new RatePublisher(nc, jetstream(nc, { timeout: opts.ackTimeoutMs ?? 5000 }), opts);
    const t0 = performance.now();
    p.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) * opts.rate) / 1000);
      while (p.published < due) p.publishOne();
    }, TICK_MS);
    return p;
  }

  get failed(): number {
    let n = 0;
    for (const k of this.failures.values()) n += k;
    return n;
  }

  /** When the last publish sent after `since` that failed was sent; undefined if none did. */
  lastFailedSince(since: number): number | undefined {
    let last: number | undefined;
    for (const t of this.failedSentAt) if (t >= since && (last === undefined || t > last)) last = t;
    return last;
  }

  /** In flight: published, neither acked nor failed yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  private publishOne(): void {
    const id = `${this.opts.idPrefix}-${this.published++}`;
    const body = JSON.stringify({ id, data: { n: this.published } });
    const sentAt = performance.now();
    const p = this.js.publish(this.opts.subject, body, { msgID: id }).then(
      () => void this.acked.push(id),
      (err: unknown) => {
        this.failedSentAt.push(sentAt);
        const why = err instanceof Error ? err.message : String(err);
        this.failures.set(why, (this.failures.get(why) ?? 0) + 1);
      },
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Stops offering load and waits until every publish is acked or failed. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    await this.nc.close().catch(() => undefined);
  }
}
