/**
 * Request/reply for the data plane's hot path. The client's `request()` builds two error objects
 * per call up front (to keep a useful stack if it fails); profiled here that was ~15% of the
 * sub-queue and processor threads' CPU. This client multiplexes every reply onto one inbox
 * subscription, sweeps deadlines on one timer, and builds errors only when a call fails.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { HeraldError, TimeoutError } from "../errors.js";
import { monotonicNow } from "../platform/index.js";

/** The subject had no subscriber (the server answered 503 at once). */
export class NoRespondersError extends HeraldError {
  constructor(subject: string) {
    super("NO_RESPONDERS", `no responders on ${subject}`, { userError: false });
    this.name = "NoRespondersError";
  }
}

interface Pending {
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  /** Monotonic ms. */
  deadline: number;
  timeoutMs: number;
  subject: string;
}

/** How often deadlines are checked, ms: a timeout fires at most this late. */
const SWEEP_MS = 100;

export class Rpc {
  private readonly inbox: string;
  private readonly pending = new Map<string, Pending>();
  private readonly sub: Subscription;
  private readonly sweep: ReturnType<typeof setInterval>;
  private seq = 0;

  /** @param inboxPrefix the connection's inbox prefix (a node's private one, see names.ts). */
  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix?: string,
  ) {
    this.inbox = createInbox(inboxPrefix);
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (_err, m) => {
        const token = m.subject.slice(this.inbox.length + 1);
        const p = this.pending.get(token);
        if (!p) return; // late reply after a timeout
        this.pending.delete(token);
        if (m.headers?.code === 503 && m.data.length === 0) p.reject(new NoRespondersError(p.subject));
        else p.resolve(m);
      },
    });
    this.sweep = setInterval(() => this.expire(), SWEEP_MS);
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Msg> {
    const token = (++this.seq).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: monotonicNow() + timeoutMs, timeoutMs, subject });
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}` });
      } catch (err) {
        this.pending.delete(token);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  close(): void {
    clearInterval(this.sweep);
    this.sub.unsubscribe();
    for (const p of this.pending.values()) p.reject(new Error("rpc client closed"));
    this.pending.clear();
  }

  private expire(): void {
    const now = monotonicNow();
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(new TimeoutError(`the request on ${p.subject}`, p.timeoutMs));
      }
    }
  }
}
