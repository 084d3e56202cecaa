/**
 * What a sub-queue actor counts (runtime/metrics/meter.ts): messages received, and how each
 * dispatch was settled — delivered (with its stored-to-pushed latency), retried, dead-lettered.
 * Each topic's series handles are made on first use and kept, so counting is a lookup by topic
 * and an addition.
 */
import type { TopicConfig } from "../../runtime/config/index.js";
import type { Counter, Histogram, Meter } from "../../runtime/metrics/meter.js";
import type { Settlement } from "../../runtime/pipeline/settle.js";
import type { DeadReason, Envelope } from "../../runtime/pipeline/types.js";

interface TopicSeries {
  received: Map<string, Counter>;
  delivered: Counter;
  retried: Counter;
  latency: Histogram;
  dead: Map<string, Counter>;
}

export class SubQueueMetrics {
  readonly #topics = new Map<string, TopicSeries>();

  constructor(
    private readonly meter: Meter,
    private readonly topics: Record<string, TopicConfig>,
    /** Wall-clock ms. */
    private readonly now: () => number,
  ) {
    // Every configured topic's series exist from the start, at 0: a scrape shows them before
    // the first message (and a rate over them has a starting point).
    for (const t of Object.keys(topics)) this.#series(t);
  }

  /** A queued message read for the first time. */
  received(env: Envelope): void {
    const t = this.#series(env.topic);
    // `collector:<name>` counts as `collector`: a label has few values.
    const source = env.source.startsWith("collector:") ? "collector" : env.source;
    let c = t.received.get(source);
    if (!c) {
      c = this.meter.counter("herald_messages_received_total", { topic: env.topic, source });
      t.received.set(source, c);
    }
    c.add();
  }

  /** A settlement carried out for `env` (ack, retry or dead letter). */
  settled(env: Envelope, s: Settlement): void {
    if (s.action === "dead") return this.dead(env.topic, s.reason);
    const t = this.#series(env.topic);
    if (s.action === "retry") return t.retried.add();
    t.delivered.add();
    t.latency.observe(Math.max(0, (this.now() - env.createdAt) / 1000));
  }

  /** A dead letter written for a message of `topic`. */
  dead(topic: string, reason: DeadReason): void {
    const t = this.#series(topic);
    let c = t.dead.get(reason);
    if (!c) {
      c = this.meter.counter("herald_messages_dead_lettered_total", { topic, reason });
      t.dead.set(reason, c);
    }
    c.add();
  }

  #series(topic: string): TopicSeries {
    let t = this.#topics.get(topic);
    if (!t) {
      const channel = this.topics[topic]?.channel ?? "unknown";
      t = {
        received: new Map(),
        delivered: this.meter.counter("herald_messages_delivered_total", { topic, channel }),
        retried: this.meter.counter("herald_messages_retried_total", { topic, channel }),
        latency: this.meter.histogram("herald_stored_to_pushed_seconds", { topic }),
        dead: new Map(),
      };
      this.#topics.set(topic, t);
    }
    return t;
  }
}
