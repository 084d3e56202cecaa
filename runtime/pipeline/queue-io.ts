/**
 * Reading and writing the pipeline's streams: queueing an envelope, recording exceptions and dead
 * letters. Every write waits for the JetStream ack: nothing is acked upstream before its successor
 * record is durable.
 *
 * Successor records always fit. A record is checked against the server's `max_payload` before it
 * is sent: an exception entry too large to send is a permanent failure (the caller dead-letters
 * the message instead), and a dead letter too large to carry its original is stored without it,
 * the original being kept whole as its own message in the dead-letter stream (it fitted once, as
 * the stored message it came from, so it fits again).
 */
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { encode } from "../codec/index.js";
import { TooLargeError } from "../errors.js";
import { type DeadLetter, type ExceptionEntry } from "./streams.js";
import type { Envelope } from "./types.js";
import { HEADER_ENVELOPE, HEADER_ID, type Names, names } from "../names.js";

/** Room left in `max_payload` for headers (Nats-Msg-Id, Herald-Id…), bytes. */
export const HEADER_ROOM_BYTES = 1024;

/** Room a message needs beyond its `data` (the envelope's other fields, msgpack overhead), bytes. */
export const ENVELOPE_ROOM_BYTES = 8192;

/**
 * Why `limits.maxPayloadBytes` cannot work with a server whose `max_payload` is `serverMax`, or
 * undefined when it can: every accepted message must fit as a stored message with its headers.
 */
export function payloadRoomProblem(maxPayloadBytes: number, serverMax: number): string | undefined {
  const needed = maxPayloadBytes + ENVELOPE_ROOM_BYTES + HEADER_ROOM_BYTES;
  if (needed <= serverMax) return undefined;
  const fits = serverMax - ENVELOPE_ROOM_BYTES - HEADER_ROOM_BYTES;
  return (
    `limits.maxPayloadBytes = ${maxPayloadBytes} does not fit the NATS server's max_payload of ${serverMax} bytes ` +
    `(a message needs ${ENVELOPE_ROOM_BYTES + HEADER_ROOM_BYTES} bytes more for its envelope and headers): ` +
    (fits > 0 ? `lower limits.maxPayloadBytes to at most ${fits}, or ` : "") +
    `raise max_payload in the nats-server config`
  );
}

/** The message a dead letter preserves: its bytes, where they go back on replay, and how. */
export interface Original {
  /** Subject a replay publishes to (`herald.in.<topic>`). */
  subject: string;
  data: Uint8Array;
  /** The bytes are a Herald envelope (replay sets the `Herald-Envelope` header). */
  envelopeHeader: boolean;
}

export interface QueueIOOptions {
  prefix: string;
  /** The server's `max_payload` (`nc.info.max_payload`), bytes. */
  maxPayload: number;
  /** True for configured topics; dead letters of any other topic share one subject. */
  isTopic: (topic: string) => boolean;
}

export class QueueIO {
  readonly names: Names;
  private readonly maxPayload: number;
  private readonly isTopic: (topic: string) => boolean;

  constructor(
    private readonly js: JetStreamClient,
    opts: QueueIOOptions,
  ) {
    this.names = names(opts.prefix);
    this.maxPayload = opts.maxPayload;
    this.isTopic = opts.isTopic;
  }

  /** The largest payload a record may have, bytes. */
  get payloadRoom(): number {
    return this.maxPayload - HEADER_ROOM_BYTES;
  }

  /**
   * Queues a validated envelope; `duplicate` when the same id was already queued for the same
   * topic within the window (the dedup key is `<topic>:<id>`: ids are unique per topic).
   * @throws TooLargeError when the encoded envelope does not fit the server's `max_payload`.
   */
  async enqueue(env: Envelope, msgId = env.id): Promise<PubAck> {
    const data = this.fitted(encode(env), `message ${env.id}`);
    const h = natsHeaders();
    h.set(HEADER_ENVELOPE, "1");
    return this.js.publish(this.names.in(env.topic), data, { msgID: `${env.topic}:${msgId}`, headers: h });
  }

  /** @throws TooLargeError when the entry does not fit: a message this large cannot be retried. */
  async exception(entry: ExceptionEntry): Promise<PubAck> {
    const data = this.fitted(encode(entry), `the exception entry of ${entry.envelope.id}`);
    const h = natsHeaders();
    h.set(HEADER_ID, entry.envelope.id);
    const msgId = `exc:${entry.envelope.topic}:${entry.envelope.id}:${entry.attempts}`;
    return this.js.publish(this.names.exc(entry.envelope.topic), data, { msgID: msgId, headers: h });
  }

  /**
   * Writes a dead letter (deduplicated on `msgId`), keeping `original` so a replay can bring the
   * message back: a letter with neither `envelope` nor `raw` carries it inline as `raw`. When the
   * letter would not fit so, the original is stored whole as its own message first and the letter
   * refers to it by sequence (`body`); without an `original` the letter is stored without them.
   */
  async deadLetter(dl: DeadLetter, msgId: string, original?: Original): Promise<PubAck> {
    const known = this.isTopic(dl.topic);
    const subject = known ? this.names.dlq(dl.topic) : this.names.dlqUnknown;
    const whole = original !== undefined && dl.envelope === undefined && dl.raw === undefined;
    let data = encode(whole ? { ...dl, raw: original.data, subject: original.subject, envelopeHeader: original.envelopeHeader } : dl);
    if (data.length > this.payloadRoom) {
      const { envelope: _e, raw: _r, ...bare } = dl;
      let letter: DeadLetter = bare;
      if (original !== undefined) {
        const body = await this.js.publish(this.names.dlqBody(known ? dl.topic : "_unknown"), original.data, {
          msgID: `dlqbody:${msgId}`,
          headers: bodyHeaders(dl.id, original),
        });
        letter = { ...bare, subject: original.subject, envelopeHeader: original.envelopeHeader, body: { seq: body.seq, bytes: original.data.length } };
      }
      data = encode(letter);
    }
    const h = natsHeaders();
    h.set(HEADER_ID, dl.id);
    return this.js.publish(subject, this.fitted(data, `the dead letter of ${dl.id}`), { msgID: `dlq:${msgId}`, headers: h });
  }

  private fitted(data: Uint8Array, what: string): Uint8Array {
    if (data.length > this.payloadRoom) throw new TooLargeError(what, data.length, this.payloadRoom);
    return data;
  }
}

function bodyHeaders(id: string, original: Original): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADER_ID, id);
  if (original.envelopeHeader) h.set(HEADER_ENVELOPE, "1");
  return h;
}
