/**
 * The `sse` channel: stores each push in its topic's retention stream, on the recipient's subject
 * (`<prefix>.sse.<topic>.<recipient>`), and counts it delivered once the stream has it (its ack).
 * Every node's HTTP port follows those subjects and streams them to the recipient's connected
 * clients as server-sent events, replaying from the stream what a client missed
 * (runtime/node/sse-hub.ts). A push with no one connected waits in the stream for
 * `topics.<name>.retainMs`.
 */
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import type { SingleTopicConfig } from "../../../runtime/config/schema.js";
import type { Names } from "../../../runtime/names.js";
import { checkRecipientId } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { encodePayload, InFlight, type Channel } from "./channel.js";
import { storeInStream } from "./nats.js";

export class SseChannel implements Channel {
  readonly kind = "sse" as const;
  readonly #inFlight = new InFlight();
  #js: JetStreamClient | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: Pick<Names, "sse" | "sseStream">,
    private readonly ackTimeoutMs = 5000,
  ) {}

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "sse channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  close(): Promise<void> {
    return this.#inFlight.close();
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "sse") return { outcome: "dead", reason: "rejected", error: `sse channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    const to = msg.to;
    if (to === undefined) return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} streams to a recipient: the message's "to" must be a recipient id, got none` };
    try {
      checkRecipientId(to);
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} streams to a recipient: ${(err as Error).message}` };
    }
    const encoded = encodePayload(msg);
    if ("dead" in encoded) return encoded.dead;
    const h = headers();
    h.set("Herald-Id", msg.id);
    this.#js ??= jetstream(this.nc, { timeout: this.ackTimeoutMs });
    const stream = this.names.sseStream(msg.topic);
    return storeInStream(this.#js, this.names.sse(msg.topic, to), msg.id, encoded.body, h, `every node makes stream ${stream} when it starts; check it with nats stream info ${stream}`);
  }
}
