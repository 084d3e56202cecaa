/**
 * The `nats` channel: publishes the push payload as JSON on the topic's subject
 * (default `<prefix>.out.<topic>`). A push counts as delivered only once the server has answered a
 * flush issued after the publish, so a message buffered on a broken connection is retried rather
 * than lost.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { headers, InvalidArgumentError, InvalidSubjectError } from "@nats-io/transport-node";
import type { TopicConfig } from "../../../runtime/config/schema.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";

/** Options of {@link NatsChannel}. */
export interface NatsChannelOptions {
  /**
   * How long to wait for the server to confirm a publish (a flush), in ms. While the client is
   * reconnecting a flush waits; past this the push is a `retry`. @defaultValue 5000
   */
  flushTimeoutMs?: number;
}

export class NatsChannel implements Channel {
  readonly kind = "nats" as const;
  readonly #nc: NatsConnection;
  readonly #defaultSubject: (topic: string) => string;
  readonly #flushTimeoutMs: number;
  readonly #inFlight = new InFlight();
  /** The flush covering every publish made in the current tick (one PING for a burst of pushes). */
  #batch: Promise<void> | undefined;

  /**
   * @param nc a connection the channel uses but does not own (`close()` leaves it open).
   * @param defaultSubject subject of a topic without `subject`, e.g. `names(prefix).out`.
   */
  constructor(nc: NatsConnection, defaultSubject: (topic: string) => string, opts: NatsChannelOptions = {}) {
    this.#nc = nc;
    this.#defaultSubject = defaultSubject;
    this.#flushTimeoutMs = opts.flushTimeoutMs ?? 5000;
  }

  push(msg: PushMessage, topic: TopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "nats channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  close(): Promise<void> {
    return this.#inFlight.close();
  }

  async #push(msg: PushMessage, topic: TopicConfig): Promise<Outcome> {
    if (topic.channel !== "nats") {
      return { outcome: "dead", reason: "rejected", error: `nats channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    }
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    const subject = topic.subject ?? this.#defaultSubject(msg.topic);
    try {
      const h = headers();
      // Nats-Msg-Id lets a JetStream stream capturing the subject drop our retries' duplicates.
      h.set("Nats-Msg-Id", msg.id);
      h.set("Herald-Id", msg.id);
      this.#nc.publish(subject, encoded.body, { headers: h });
      await this.#flush();
      return { outcome: "delivered", detail: `published on ${subject}` };
    } catch (err) {
      const why = `publish on ${subject} failed: ${err instanceof Error ? err.message : String(err)}`;
      // A payload over the server's max_payload or a bad subject fails the same way every time.
      if (err instanceof InvalidArgumentError || err instanceof InvalidSubjectError) {
        return { outcome: "dead", reason: "rejected", error: why };
      }
      return { outcome: "retry", reason: why };
    }
  }

  #flush(): Promise<void> {
    // Publishes made before the microtask runs are in the outbound buffer ahead of its PING.
    this.#batch ??= Promise.resolve().then(() => {
      this.#batch = undefined;
      return withTimeout(this.#nc.flush(), this.#flushTimeoutMs, `the server did not confirm within ${this.#flushTimeoutMs} ms`);
    });
    return this.#batch;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
