/**
 * What a sub-queue actor counts (runtime/metrics/meter.ts): messages received, and how each
 * dispatch was settled — delivered (with its stored-to-pushed latency), retried, dead-lettered;
 * a fan-out message channel by channel.
 * Each topic's series handles are made on first use and kept, so counting is a lookup by topic
 * and an addition.
 */
import type { TopicConfig } from "../../runtime/config/index.js";
import { isFanout } from "../../runtime/config/topics.js";
import type { Counter, Histogram, Meter } from "../../runtime/metrics/meter.js";
import type { Settlement } from "../../runtime/pipeline/settle.js";
import type { DeadReason, Envelope } from "../../runtime/pipeline/types.js";

interface ChannelSeries {
  delivered: Counter;
  retried: Counter;
}

interface TopicSeries {
  received: Map<string, Counter>;
  /** Each channel's counts, by its label: a single-channel topic's kind, a fan-out topic's channel names. */
  channels: Map<string, ChannelSeries>;
  /** A single-channel topic's one channel (undefined for a fan-out topic). */
  only: ChannelSeries | undefined;
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

  /**
   * A settlement carried out for `env` (ack, retry or dead letter). A fan-out message counts per
   * channel: each delivered channel as a delivery (with its latency), each retried one as a retry,
   * each dead letter as one.
   */
  settled(env: Envelope, s: Settlement): void {
    if (s.action === "dead") return this.dead(env.topic, s.reason);
    const t = this.#series(env.topic);
    if (s.action === "split") {
      for (const c of s.delivered) this.#delivered(t, this.#channel(t, env.topic, c), env);
      for (const c of s.retry?.channels ?? []) this.#channel(t, env.topic, c).retried.add();
      for (const d of s.dead) this.dead(env.topic, d.reason);
      return;
    }
    if (t.only !== undefined) {
      if (s.action === "retry") t.only.retried.add();
      else this.#delivered(t, t.only, env);
      return;
    }
    // A fan-out message settled as a whole (its pusher could not be asked): each pending channel.
    for (const name of env.channels ?? t.channels.keys()) {
      const c = this.#channel(t, env.topic, name);
      if (s.action === "retry") c.retried.add();
      else this.#delivered(t, c, env);
    }
  }

  #delivered(t: TopicSeries, c: ChannelSeries, env: Envelope): void {
    c.delivered.add();
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
      const config = this.topics[topic];
      t = { received: new Map(), channels: new Map(), only: undefined, latency: this.meter.histogram("herald_stored_to_pushed_seconds", { topic }), dead: new Map() };
      this.#topics.set(topic, t);
      if (config !== undefined && isFanout(config)) for (const c of config.channels) this.#channel(t, topic, c.name);
      else t.only = this.#channel(t, topic, config?.channel ?? "unknown");
    }
    return t;
  }

  #channel(t: TopicSeries, topic: string, channel: string): ChannelSeries {
    let c = t.channels.get(channel);
    if (!c) {
      c = {
        delivered: this.meter.counter("herald_messages_delivered_total", { topic, channel }),
        retried: this.meter.counter("herald_messages_retried_total", { topic, channel }),
      };
      t.channels.set(channel, c);
    }
    return c;
  }
}
