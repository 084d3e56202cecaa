/**
 * The rules and pauses in force, as the rules bucket says, kept current by a KV watch (so a
 * `herald rules set` or `herald pause` reaches every sub-queue actor within moments).
 */
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../runtime/log.js";
import { bindBucket } from "../../runtime/nats/buckets.js";
import { watchKv, type WatchHandle } from "../../runtime/nats/kv-watch.js";
import { parseRules } from "../../runtime/rules/schema.js";
import type { Rules } from "../../runtime/rules/types.js";
import { PAUSE_ALL_KEY, RULES_DEFAULT_KEY, rateLimitKey } from "../../runtime/names.js";
import { storedRateLimit, type RateLimit } from "../../runtime/rules/store.js";

const LIMIT_PREFIX = rateLimitKey("");

export class RulesView {
  private readonly rules = new Map<string, Rules>();
  private readonly pauses = new Set<string>();
  /** Rate limits the bucket holds, by topic (null: removed on purpose). */
  private readonly limits = new Map<string, RateLimit | null>();
  private watch: WatchHandle | undefined;
  /** Bumped on every change, so lanes know to recompute. */
  version = 0;

  constructor(
    private readonly fallback: Rules,
    private readonly log: Logger,
    private readonly onChange: () => void,
  ) {}

  async start(nc: NatsConnection, bucket: string): Promise<void> {
    const kv: KV = await bindBucket(nc, bucket);
    // Read once before dispatching anything, so the first messages already follow the rules.
    for (const key of [RULES_DEFAULT_KEY, PAUSE_ALL_KEY]) {
      const e = await kv.get(key);
      if (e) this.apply(e.key, e.operation === "PUT" ? e.string() : undefined);
    }
    this.watch = watchKv(nc, kv, ">", (e) => this.apply(e.key, e.operation === "PUT" ? e.string() : undefined), this.log);
  }

  stop(): void {
    this.watch?.stop();
  }

  /** The stored rule for a topic, else the default. */
  rulesFor(topic: string): Rules {
    return this.rules.get(`topic.${topic}`) ?? this.rules.get(RULES_DEFAULT_KEY) ?? this.fallback;
  }

  /** Pause keys in force (all topics, or single topics). */
  get pauseCount(): number {
    return this.pauses.size;
  }

  /** The rate limit in force for a topic: the bucket's, else the config's (`fallbackLimit`); null for none. */
  rateLimit(topic: string, fallbackLimit: RateLimit | null): RateLimit | null {
    const stored = this.limits.get(topic);
    return stored === undefined ? fallbackLimit : stored;
  }

  paused(topic: string): boolean {
    return this.pauses.has(PAUSE_ALL_KEY) || this.pauses.has(`pause.topic.${topic}`);
  }

  private apply(key: string, value: string | undefined): void {
    if (key.startsWith("pause.")) {
      const was = this.pauses.has(key);
      if (value === undefined) this.pauses.delete(key);
      else this.pauses.add(key);
      if (was !== this.pauses.has(key)) this.changed(`${key} ${value === undefined ? "cleared" : "set"}`);
      return;
    }
    if (key.startsWith(LIMIT_PREFIX)) {
      const topic = key.slice(LIMIT_PREFIX.length);
      const limit = value === undefined ? undefined : storedRateLimit(value);
      if (value !== undefined && limit === undefined) {
        this.log.error("ignoring an invalid rate limit in the bucket", { key });
        return;
      }
      if (limit === undefined) this.limits.delete(topic);
      else this.limits.set(topic, limit);
      this.changed(`${key} ${value === undefined ? "removed" : "set"}`);
      return;
    }
    if (key !== RULES_DEFAULT_KEY && !key.startsWith("topic.")) return;
    if (value === undefined) {
      this.rules.delete(key);
      this.changed(`${key} removed`);
      return;
    }
    try {
      this.rules.set(key, parseRules(JSON.parse(value), key));
      this.changed(`${key} updated`);
    } catch (err) {
      // `herald rules set` validates; a bad value written by other means keeps the old rule.
      this.log.error("ignoring invalid rules in the bucket", { key, error: (err as Error).message });
    }
  }

  private changed(what: string): void {
    this.version++;
    this.log.debug("rules changed", { what });
    this.onChange();
  }
}
