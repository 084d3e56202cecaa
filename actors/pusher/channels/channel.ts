/**
 * The push interface (seed CN103856392): a channel delivers one rendered message and says what
 * became of it. Channels never throw from `push`; every failure is an {@link Outcome}, so the
 * pusher maps it one to one onto ack / retry / dead letter.
 */
import type { SingleTopicConfig } from "../../../runtime/config/schema.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";

/** One way of delivering messages (a NATS subject, a webhook, …). */
export interface Channel {
  /** The `topics.<name>.channel` value this channel serves. */
  readonly kind: SingleTopicConfig["channel"];
  /**
   * Delivers `msg` as `topic` says. Resolves with the outcome; never rejects.
   * `delivered` means the receiver (or the NATS server) has it.
   */
  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome>;
  /** Stops taking pushes and waits for those in flight. Does not close shared resources. */
  close(): Promise<void>;
}

/** Envelope fields of the push payload; a rendered field of the same name cannot replace them. */
const RESERVED = new Set(["id", "topic", "to", "createdAt", "data"]);

/**
 * The JSON body every channel delivers: `{ id, topic, to, createdAt, ...rendered, data }`, the
 * rendered fields flattened at the top level and `to` left out when absent. The identity fields
 * win over a rendered field of the same name: receivers deduplicate on `id`.
 */
export function pushPayload(msg: PushMessage): Record<string, unknown> {
  // fromEntries defines own properties, so a field named "__proto__" stays a plain field.
  const rendered = Object.fromEntries(Object.entries(msg.rendered).filter(([k]) => !RESERVED.has(k)));
  return {
    id: msg.id,
    topic: msg.topic,
    ...(msg.to === undefined ? {} : { to: msg.to }),
    createdAt: msg.createdAt,
    ...rendered,
    data: msg.data,
  };
}

/**
 * `pushPayload` as JSON text, or the `dead` outcome when the message cannot be encoded
 * (a BigInt or a cycle in `data`): retrying would fail the same way.
 */
export function encodePayload(msg: PushMessage): { body: string } | { dead: Outcome } {
  try {
    return { body: JSON.stringify(pushPayload(msg)) };
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { dead: { outcome: "dead", reason: "invalid", error: `message ${msg.id} cannot be encoded as JSON: ${why}` } };
  }
}

/** Tracks pushes in flight so `close()` can wait for them. */
export class InFlight {
  #closed = false;
  readonly #pending = new Set<Promise<unknown>>();

  get closed(): boolean {
    return this.#closed;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p)).catch(() => {});
    return p;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
  }
}
