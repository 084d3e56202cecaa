/**
 * The `nats` channel: publishes the push payload as JSON on the topic's subject
 * (default `<prefix>.out.<topic>`).
 *
 * - Core publish (the default): a push counts as delivered once the server has answered a flush
 *   issued after the publish, so a message buffered on a broken connection is retried rather than
 *   lost. That is all core NATS promises: a push with no subscriber, or made on a server cut off
 *   from its subscribers, is delivered to nobody.
 * - `jetstream: true`: a JetStream publish to a stream the user made to capture the subject; a push
 *   counts as delivered once the stream has stored it (its ack, after replication on a cluster).
 *   `Nats-Msg-Id` is the message id, so the stream drops a retry's duplicate.
 */
import { jetstream, JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers, InvalidArgumentError, InvalidSubjectError } from "@nats-io/transport-node";
import type { SingleTopicConfig } from "../../../runtime/config/schema.js";
import { saysJetStreamOff } from "../../../runtime/nats/storage.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";

/** Options of {@link NatsChannel}. */
export interface NatsChannelOptions {
  /**
   * How long to wait for the server to confirm a publish (a flush, or the stream's ack with
   * `jetstream: true`), in ms. While the client is reconnecting a flush waits; past this the push
   * is a `retry`. @defaultValue 5000
   */
  flushTimeoutMs?: number;
}

/** JetStream's API error code for a message larger than the stream's `max_msg_size`. */
const MESSAGE_EXCEEDS_MAXIMUM = 10054;

export class NatsChannel implements Channel {
  readonly kind = "nats" as const;
  readonly #nc: NatsConnection;
  readonly #defaultSubject: (topic: string) => string;
  readonly #flushTimeoutMs: number;
  readonly #inFlight = new InFlight();
  #js: JetStreamClient | undefined;
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

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "nats channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  close(): Promise<void> {
    return this.#inFlight.close();
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "nats") {
      return { outcome: "dead", reason: "rejected", error: `nats channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    }
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    const subject = topic.subject ?? this.#defaultSubject(msg.topic);
    const h = headers();
    h.set("Herald-Id", msg.id);
    if (topic.jetstream) return this.#store(subject, msg.id, encoded.body, h);
    try {
      // Nats-Msg-Id lets a JetStream stream capturing the subject drop our retries' duplicates.
      h.set("Nats-Msg-Id", msg.id);
      this.#nc.publish(subject, encoded.body, { headers: h });
      await this.#flush();
      return { outcome: "delivered", detail: `published on ${subject}` };
    } catch (err) {
      const why = `publish on ${subject} failed: ${err instanceof Error ? err.message : String(err)}`;
      if (refusedByClient(err)) return { outcome: "dead", reason: "rejected", error: why };
      return { outcome: "retry", reason: why };
    }
  }

  /** `jetstream: true`: delivered once the capturing stream has acked the message. */
  #store(subject: string, id: string, body: Uint8Array | string, h: ReturnType<typeof headers>): Promise<Outcome> {
    this.#js ??= jetstream(this.#nc, { timeout: this.#flushTimeoutMs });
    return storeInStream(this.#js, subject, id, body, h, `create a stream with subject ${subject}, or set jetstream: false`);
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

/**
 * A JetStream publish whose ack is the delivery: `delivered` once a stream stored it (`Nats-Msg-Id`
 * = the message id, so a retry's duplicate is dropped), `dead` for what fails the same way every
 * time, else `retry`; `fix` says what to do when no stream captures `subject`.
 */
export async function storeInStream(js: JetStreamClient, subject: string, id: string, body: Uint8Array | string, h: ReturnType<typeof headers>, fix: string): Promise<Outcome> {
  try {
    const ack = await js.publish(subject, body, { msgID: id, headers: h });
    return { outcome: "delivered", detail: `stored in stream ${ack.stream} at ${ack.seq}${ack.duplicate ? " (a duplicate: stored before)" : ""}` };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    if (refusedByClient(err)) return { outcome: "dead", reason: "rejected", error: `publish on ${subject} failed: ${text}` };
    if (err instanceof JetStreamApiError && err.code === MESSAGE_EXCEEDS_MAXIMUM) {
      return { outcome: "dead", reason: "rejected", error: `the stream capturing ${subject} refused the message: ${text}` };
    }
    if (saysJetStreamOff(err)) {
      // No stream answered: none captures the subject, or its stream has no leader right now.
      return { outcome: "retry", reason: `no JetStream stream stored the push on ${subject} (none captures it, or it has no leader now): ${fix}` };
    }
    return { outcome: "retry", reason: `the stream capturing ${subject} did not store the push: ${text}` };
  }
}

/** A payload over the server's max_payload or a bad subject: it fails the same way every time. */
function refusedByClient(err: unknown): boolean {
  return err instanceof InvalidArgumentError || err instanceof InvalidSubjectError;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
