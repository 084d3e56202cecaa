/**
 * "Now" on the JetStream server's clock, as seen from this process: the one clock scheduled
 * delivery judges due times on, whatever this host's wall clock says (README, Clocks).
 *
 * A probe publishes an empty message to the clock stream and reads back the timestamp the server
 * stored it with. The server stamped it somewhere between the publish leaving and its ack coming
 * back, so the estimate is that it did so at the midpoint, give or take half the round trip; of a
 * few probes, the one with the shortest round trip wins (as NTP does). The estimate is anchored to
 * this process's monotonic clock, not its wall clock, so a wall clock that is off, or steps, changes
 * nothing: `now()` = server time of the best probe + monotonic time since its midpoint. It is
 * refreshed periodically, which also bounds drift between the two clocks.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { names } from "../names.js";
import { monotonicNow } from "../platform/index.js";

/** One probe: the monotonic times it was sent and acked, and the server's stored time, ms. */
export interface ClockSample {
  sentAt: number;
  ackedAt: number;
  serverMs: number;
}

/** The server's time at a point of this process's monotonic clock, and how sure that is. */
export interface ClockEstimate {
  /** Server time, ms since the epoch, at monotonic time `at`. */
  serverMs: number;
  at: number;
  /** Half the winning probe's round trip: the estimate is off by at most this much, ms. */
  uncertaintyMs: number;
}

/** The estimate from the sample with the shortest round trip; undefined without samples. */
export function bestEstimate(samples: readonly ClockSample[]): ClockEstimate | undefined {
  let best: ClockSample | undefined;
  for (const s of samples) if (best === undefined || s.ackedAt - s.sentAt < best.ackedAt - best.sentAt) best = s;
  if (best === undefined) return undefined;
  return { serverMs: best.serverMs, at: (best.sentAt + best.ackedAt) / 2, uncertaintyMs: (best.ackedAt - best.sentAt) / 2 };
}

/** ms since the epoch of a JetStream timestamp (`2026-12-01T20:13:14.647511291Z`), keeping the sub-ms part. */
export function timestampMs(iso: string): number {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$/.exec(iso);
  if (!m) return Date.parse(iso);
  return Date.parse(`${m[1]}Z`) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
}

export interface ServerClockOptions {
  probe: () => Promise<ClockSample>;
  /** Monotonic clock, ms. @defaultValue performance.now */
  monotonic?: () => number;
  /** Probes per estimate. @defaultValue 4 */
  samples?: number;
  /** A new estimate this often, ms. @defaultValue 30000 */
  refreshMs?: number;
  /** A failed estimate is tried again this soon, ms. @defaultValue 1000 */
  retryMs?: number;
  log?: Logger;
}

export class ServerClock {
  private estimate: ClockEstimate | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private syncing: Promise<boolean> | undefined;
  private readonly monotonic: () => number;

  constructor(private readonly opts: ServerClockOptions) {
    this.monotonic = opts.monotonic ?? monotonicNow;
  }

  /** The clock probing the server over `nc`; `prober` names this process's probe subject. */
  static overNats(nc: NatsConnection, prefix: string, prober: string, opts: Omit<ServerClockOptions, "probe"> = {}): ServerClock {
    return new ServerClock({ ...opts, probe: natsProbe(nc, prefix, prober, opts.monotonic ?? monotonicNow) });
  }

  /** Estimates now and keeps the estimate fresh until {@link stop}. */
  start(): void {
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** True once an estimate exists. */
  get ready(): boolean {
    return this.estimate !== undefined;
  }

  /** How far off {@link now} may be, ms; undefined before the first estimate. */
  get uncertaintyMs(): number | undefined {
    return this.estimate?.uncertaintyMs;
  }

  /** Server time now, ms since the epoch; undefined before the first estimate. */
  now(): number | undefined {
    const e = this.estimate;
    return e === undefined ? undefined : e.serverMs + (this.monotonic() - e.at);
  }

  /** Takes a new estimate now (concurrent calls share one); false when every probe failed. */
  sync(): Promise<boolean> {
    this.syncing ??= this.probeAll().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async probeAll(): Promise<boolean> {
    const samples: ClockSample[] = [];
    let lastError: unknown;
    for (let i = 0; i < (this.opts.samples ?? 4); i++) {
      try {
        samples.push(await this.opts.probe());
      } catch (err) {
        lastError = err;
      }
    }
    const e = bestEstimate(samples);
    if (e === undefined) {
      this.opts.log?.debug("could not read the server's clock; trying again", { error: errorText(lastError) });
      return false;
    }
    this.estimate = e;
    return true;
  }

  private async loop(): Promise<void> {
    if (!this.running) return;
    const ok = await this.sync();
    if (!this.running) return;
    this.timer = setTimeout(() => void this.loop(), ok ? (this.opts.refreshMs ?? 30_000) : (this.opts.retryMs ?? 1000));
  }
}

/** A probe over NATS: publish to `herald.clock.<prober>`, read the stored message's timestamp. */
export function natsProbe(nc: NatsConnection, prefix: string, prober: string, monotonic: () => number): () => Promise<ClockSample> {
  const n = names(prefix);
  const js = jetstream(nc, { timeout: 2000 });
  const subject = n.clock(prober.replace(/[^A-Za-z0-9_-]/g, "_"));
  let manager: ReturnType<typeof jetstreamManager> | undefined;
  return async () => {
    manager ??= jetstreamManager(nc, { timeout: 2000, checkAPI: false });
    const jsm = await manager;
    const sentAt = monotonic();
    const ack = await js.publish(subject);
    const ackedAt = monotonic();
    // A direct get may be answered by a replica that has not stored it yet: then ask the leader.
    const m = (await jsm.direct.getMessage(n.clockStream, { seq: ack.seq }).catch(() => null)) ?? (await jsm.streams.getMessage(n.clockStream, { seq: ack.seq }));
    if (!m) throw new Error(`clock probe ${ack.seq} is not in ${n.clockStream}`);
    return { sentAt, ackedAt, serverMs: timestampMs(m.timestamp) };
  };
}
