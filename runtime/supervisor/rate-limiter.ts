/**
 * Cluster-wide rate limits, kept by the master: one token bucket per rate-limited topic, from
 * which every sub-queue actor of every node asks for push tokens (`herald.rate.<topic>`) before it
 * dispatches. One clock (the master's monotonic one) refills every bucket, so four nodes together
 * push no faster than the limit, whatever their own clocks say. A new master starts each bucket
 * full (a burst may pass twice across a failover).
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Clock } from "../clock.js";
import { decode, encode } from "../codec/index.js";
import type { Logger } from "../log.js";

/** A sub-queue actor's request: tokens it could use now, and the limit as it knows it. */
export interface TokenRequest {
  want: number;
  perSecond: number;
  burst: number;
}

/** The master's answer: tokens granted (maybe 0), and when to ask again if that was not all. */
export interface TokenGrant {
  granted: number;
  /** Ask again after this long, ms (0 when all that was wanted was granted). */
  waitMs: number;
}

/** Tokens are handed out no finer than this share of a second, so a busy topic is not polled for every one. */
const GRANT_SLICE_S = 0.05;

interface Bucket {
  tokens: number;
  at: number;
  perSecond: number;
  burst: number;
}

/** The token buckets: a pure part, tested alone. */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number) {}

  grant(topic: string, req: TokenRequest): TokenGrant {
    const now = this.now();
    const perSecond = req.perSecond;
    const burst = Math.max(1, req.burst);
    let b = this.#buckets.get(topic);
    if (!b) {
      b = { tokens: burst, at: now, perSecond, burst };
      this.#buckets.set(topic, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * b.perSecond);
    b.at = now;
    // A changed limit takes effect from now on.
    b.perSecond = perSecond;
    b.burst = burst;
    const want = Math.max(0, Math.floor(req.want));
    const granted = Math.min(want, Math.floor(b.tokens));
    b.tokens -= granted;
    if (granted >= want) return { granted, waitMs: 0 };
    // Wait for a slice's worth (or what is still wanted, if less), at least one token.
    const needed = Math.max(1, Math.min(want - granted, Math.ceil(perSecond * GRANT_SLICE_S), burst)) - b.tokens;
    return { granted, waitMs: Math.max(1, Math.ceil((needed / perSecond) * 1000)) };
  }
}

/** The master's side: answers token requests while this node holds the lease. */
export class RateLimiter {
  #sub: Subscription | undefined;
  readonly #buckets: TokenBuckets;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjectPrefix: string,
    clock: Clock,
    private readonly log: Logger,
  ) {
    this.#buckets = new TokenBuckets(clock.monotonic);
  }

  start(): void {
    const prefix = `${this.subjectPrefix}.rate.`;
    this.#sub = this.nc.subscribe(`${prefix}*`, {
      queue: "herald-rate",
      callback: (err, m) => {
        if (err) return;
        try {
          const req = decode<TokenRequest>(m.data);
          if (!(req.perSecond > 0) || !Number.isFinite(req.want)) throw new Error("not a token request");
          m.respond(encode(this.#buckets.grant(m.subject.slice(prefix.length), req)));
        } catch (e) {
          this.log.debug("ignoring a bad token request", { subject: m.subject, error: (e as Error).message });
        }
      },
    });
  }

  stop(): void {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }
}
