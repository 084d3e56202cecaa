/**
 * Circuit breakers as a sub-queue actor sees and drives them. The state of each endpoint lives in
 * the endpoints bucket (runtime/pipeline/endpoints.ts), watched by every actor, so a breaker one
 * node opens holds the endpoint's messages on every node. Transitions are compare-and-set on the
 * record, so exactly one node makes each, and that node publishes the event
 * (`herald.events.endpoint.<state>`) and logs it:
 *
 *   closed → open        this actor saw `failureRate` of at least `minRequests` pushes fail
 *                        (transient failures) within `windowMs`
 *   open → half-open     `openMs` after this actor saw it open; this actor sends one probe
 *   half-open → closed   the probe was delivered (or refused: the endpoint answers)
 *   half-open → open     the probe failed; after `disableAfterMs` of open periods, → disabled
 *   disabled → closed    only by `herald endpoints enable`
 *
 * While an endpoint is not closed its topics' messages stay held (no attempt spent, kept alive).
 * Durations are measured on this node's monotonic clock from when it saw a change; no host's wall
 * clock is compared with another's.
 */
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "../../runtime/clock.js";
import type { HeraldConfig, TopicConfig } from "../../runtime/config/index.js";
import { errorText } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import { names, type Names } from "../../runtime/names.js";
import { bindBucket } from "../../runtime/nats/buckets.js";
import { watchKv, type WatchHandle } from "../../runtime/nats/kv-watch.js";
import { pushTimeoutMs } from "../../runtime/pipeline/deadlines.js";
import { changeEndpoint, endpointOf, parseEndpoint, type EndpointRecord, type EndpointState } from "../../runtime/pipeline/endpoints.js";
import type { Settled } from "./dispatcher.js";

type BreakerConfig = NonNullable<TopicConfig["breaker"]>;

/** What a lane may dispatch now. */
export type Gate = "all" | "probe" | "none";

/** How often open breakers are looked at for their probe, ms. */
const TICK_MS = 100;
/** A probe not settled this long after its push deadline is taken over by another node, ms. */
const PROBE_GRACE_MS = 5000;

interface Seen {
  record: EndpointRecord;
  /** This node's monotonic time when it saw the record. */
  at: number;
}

export class Breakers {
  readonly #names: Names;
  /** Endpoint of each topic with a breaker. */
  readonly #endpointOf = new Map<string, string>();
  /** The topics of each endpoint, in config order (the first one's breaker settings rule its timing). */
  readonly #topicsOf = new Map<string, string[]>();
  readonly #seen = new Map<string, Seen>();
  /** Outcomes this actor saw per endpoint while closed: monotonic time and whether it failed. */
  readonly #window = new Map<string, { at: number; failed: boolean }[]>();
  /** Endpoints whose probe this actor may send (it won half-open) and has not sent yet. */
  readonly #probeDue = new Set<string>();
  /** Endpoints whose probe this actor has in flight. */
  readonly #probing = new Set<string>();
  #kv: KV | undefined;
  #watch: WatchHandle | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: HeraldConfig,
    private readonly me: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** A breaker changed: lanes may dispatch again. */
    private readonly onChange: () => void,
  ) {
    this.#names = names(config.subjectPrefix);
    for (const [name, t] of Object.entries(config.topics)) {
      if (!t.breaker) continue;
      const endpoint = endpointOf(name, t);
      this.#endpointOf.set(name, endpoint);
      this.#topicsOf.set(endpoint, [...(this.#topicsOf.get(endpoint) ?? []), name]);
    }
  }

  get active(): boolean {
    return this.#endpointOf.size > 0;
  }

  async start(): Promise<void> {
    if (!this.active) return;
    this.#kv = await bindBucket(this.nc, this.#names.endpointsBucket);
    this.#watch = watchKv(this.nc, this.#kv, ">", (e) => this.#apply(e.operation === "PUT" ? e.string() : undefined), this.log);
    this.#timer = setInterval(() => void this.#tick(), TICK_MS);
  }

  stop(): void {
    this.#watch?.stop();
    clearInterval(this.#timer);
  }

  /** Whether `topic`'s lane may dispatch: everything, one probe, or nothing. */
  gate(topic: string): Gate {
    const endpoint = this.#endpointOf.get(topic);
    if (endpoint === undefined) return "all";
    const state = this.#seen.get(endpoint)?.record.state ?? "closed";
    if (state === "closed") return "all";
    if (state === "half-open" && this.#probeDue.has(endpoint)) return "probe";
    return "none";
  }

  /** The lane sent its probe (one message). */
  probeSent(topic: string): void {
    const endpoint = this.#endpointOf.get(topic)!;
    this.#probeDue.delete(endpoint);
    this.#probing.add(endpoint);
  }

  /** What became of a dispatch: transient failures count against the endpoint; a refusal means it answers. */
  observe(topic: string, settled: readonly Settled[], probe: boolean): void {
    const endpoint = this.#endpointOf.get(topic);
    if (endpoint === undefined) return;
    const cfg = this.config.topics[topic]!.breaker!;
    const failed = settled.filter((s) => s === "retrying").length;
    const answered = settled.filter((s) => s === "delivered" || s === "dead").length;
    if (probe) {
      this.#probing.delete(endpoint);
      if (failed > 0) void this.#reopen(endpoint, cfg, topic);
      else if (answered > 0) void this.#transition(endpoint, topic, "half-open", "closed", "the probe was delivered", 0);
      else this.#probeDue.add(endpoint); // handed back unsent: probe again
      return;
    }
    if ((this.#seen.get(endpoint)?.record.state ?? "closed") !== "closed") return;
    const now = this.clock.monotonic();
    const w = (this.#window.get(endpoint) ?? []).filter((x) => now - x.at <= cfg.windowMs);
    for (const s of settled) if (s === "retrying" || s === "delivered" || s === "dead") w.push({ at: now, failed: s === "retrying" });
    this.#window.set(endpoint, w);
    const failures = w.filter((x) => x.failed).length;
    if (w.length >= cfg.minRequests && failures / w.length >= cfg.failureRate) {
      this.#window.delete(endpoint);
      const why = `${failures} of ${w.length} pushes failed within ${cfg.windowMs / 1000} s (seen by ${this.me})`;
      void this.#transition(endpoint, topic, "closed", "open", why, 1);
    }
  }

  /** The probe failed: open again, or disabled once open for disableAfterMs in all. */
  async #reopen(endpoint: string, cfg: BreakerConfig, topic: string): Promise<void> {
    const opens = (this.#seen.get(endpoint)?.record.opens ?? 1) + 1;
    const disable = cfg.disableAfterMs > 0 && (opens - 1) * cfg.openMs >= cfg.disableAfterMs;
    const why = disable ? `failing for ${((opens - 1) * cfg.openMs) / 1000} s (breaker.disableAfterMs): disabled until herald endpoints enable` : "the probe failed";
    await this.#transition(endpoint, topic, "half-open", disable ? "disabled" : "open", why, opens);
  }

  /** Moves `from` → `to` by compare-and-set; the winner publishes the event and logs it. */
  async #transition(endpoint: string, topic: string, from: EndpointState, to: EndpointState, reason: string, opens: number, prober?: string): Promise<void> {
    if (!this.#kv) return;
    const topics = this.#topicsOf.get(endpoint) ?? [topic];
    const seenSince = this.#seen.get(endpoint)?.record.since;
    let written: EndpointRecord | undefined;
    try {
      written = await changeEndpoint(this.#kv, endpoint, (old) => {
        const state = old?.state ?? "closed";
        if (state !== from) return undefined;
        // The same period we judged (not one another node has since replaced).
        if (from !== "closed" && old?.since !== seenSince) return undefined;
        return { endpoint, state: to, topics, since: new Date(this.clock.wall()).toISOString(), reason, node: this.me, opens, ...(prober ? { prober } : {}) };
      });
    } catch (err) {
      this.log.debug("could not change an endpoint's breaker", { endpoint, error: errorText(err) });
      return;
    }
    if (!written) return;
    const event = { type: `endpoint.${to}`, endpoint, previous: from, state: to, topics, reason, node: this.me, at: written.since };
    this.nc.publish(this.#names.endpointEvent(to), JSON.stringify(event));
    const log = to === "closed" || to === "half-open" ? this.log.info : this.log.warn;
    log(`endpoint ${to}`, { endpoint, topic, previous: from, reason });
    this.#apply(JSON.stringify(written));
  }

  #apply(text: string | undefined): void {
    const record = text === undefined ? undefined : parseEndpoint(text);
    if (!record) return;
    const before = this.#seen.get(record.endpoint)?.record;
    if (before && before.since === record.since && before.state === record.state && before.prober === record.prober) return;
    this.#seen.set(record.endpoint, { record, at: this.clock.monotonic() });
    if (record.state === "half-open" && record.prober === this.me && !this.#probing.has(record.endpoint)) this.#probeDue.add(record.endpoint);
    if (record.state !== "half-open" || record.prober !== this.me) this.#probeDue.delete(record.endpoint);
    if (record.state === "closed") this.#window.delete(record.endpoint);
    this.onChange();
  }

  /** Open breakers whose openMs is up become half-open (this actor probes); stuck probes are taken over. */
  async #tick(): Promise<void> {
    const now = this.clock.monotonic();
    for (const [endpoint, { record, at }] of this.#seen) {
      const topic = this.#topicsOf.get(endpoint)?.[0];
      if (topic === undefined) continue;
      const cfg = this.config.topics[topic]!.breaker!;
      if (record.state === "open" && now - at >= cfg.openMs) {
        await this.#transition(endpoint, topic, "open", "half-open", `probing after ${cfg.openMs / 1000} s open`, record.opens, this.me);
      } else if (record.state === "half-open" && record.prober !== this.me && now - at >= cfg.openMs + pushTimeoutMs(this.config, topic) + PROBE_GRACE_MS) {
        await this.#transition(endpoint, topic, "half-open", "half-open", `the probe of ${record.prober} did not settle: ${this.me} probes`, record.opens, this.me);
      }
    }
  }
}
