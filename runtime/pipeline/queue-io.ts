/**
 * Reading and writing the pipeline's streams: queueing an envelope, turning a queued message back
 * into one (raw publishes on `herald.in.<topic>` are validated here), and recording exceptions
 * and dead letters. Every write waits for the JetStream ack: nothing is acked upstream before
 * its successor record is durable.
 */
import type { JetStreamClient, JsMsg, PubAck } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { ulid } from "ulid";
import { decode, encode } from "../codec.js";
import type { TopicConfig } from "../config/index.js";
import { seededRandom } from "../rules/random.js";
import { decodeSubmission, envelopeProblem, validateSubmission } from "./envelope.js";
import {
  HEADER_ENVELOPE,
  HEADER_ID,
  pipelineNames,
  type DeadLetter,
  type ExceptionEntry,
  type PipelineNames,
} from "./streams.js";
import type { Envelope } from "./types.js";

export class QueueIO {
  readonly names: PipelineNames;

  constructor(
    private readonly js: JetStreamClient,
    private readonly prefix: string,
  ) {
    this.names = pipelineNames(prefix);
  }

  /** Queues a validated envelope; `duplicate` when its id was already queued within the window. */
  async enqueue(env: Envelope, msgId = env.id): Promise<PubAck> {
    const h = natsHeaders();
    h.set(HEADER_ENVELOPE, "1");
    return this.js.publish(`${this.prefix}.in.${env.topic}`, encode(env), { msgID: msgId, headers: h });
  }

  async exception(entry: ExceptionEntry): Promise<PubAck> {
    const h = natsHeaders();
    h.set(HEADER_ID, entry.envelope.id);
    const msgId = `exc:${entry.envelope.id}:${entry.attempts}`;
    return this.js.publish(this.names.exc(entry.envelope.topic), encode(entry), { msgID: msgId, headers: h });
  }

  async deadLetter(dl: DeadLetter, msgId: string): Promise<PubAck> {
    const h = natsHeaders();
    h.set(HEADER_ID, dl.id);
    return this.js.publish(this.names.dlq(safeToken(dl.topic)), encode(dl), { msgID: `dlq:${msgId}`, headers: h });
  }
}

export type Parsed = { ok: true; envelope: Envelope } | { ok: false; dead: DeadLetter };

export interface ParseContext {
  prefix: string;
  topics: Record<string, TopicConfig>;
  maxPayloadBytes: number;
}

/** ms since epoch at which JetStream stored the message: its received time. */
export function storedAtMs(m: JsMsg): number {
  return m.time.getTime();
}

/**
 * The envelope of a queued message. Messages queued by Herald's own ingest carry a validated
 * msgpack envelope; anything else was published raw on `herald.in.<topic>` by some client and is
 * validated now. Its id (when the client gave none) and createdAt derive from the stream record,
 * so a redelivery yields the same envelope.
 */
export function parseQueued(m: JsMsg, ctx: ParseContext): Parsed {
  const topic = m.subject.slice(`${ctx.prefix}.in.`.length);
  const storedAt = storedAtMs(m);
  const seq = m.info.streamSequence;
  if (m.headers?.get(HEADER_ENVELOPE) === "1") {
    let value: unknown;
    try {
      value = decode(m.data);
    } catch (err) {
      return { ok: false, dead: invalid(topic, seq, `malformed queued envelope: ${String(err)}`, m) };
    }
    // The header is only a claim: any client can set it.
    const problem = envelopeProblem(value, topic);
    if (problem) return { ok: false, dead: invalid(topic, seq, `malformed queued envelope: ${problem}`, m) };
    return { ok: true, envelope: value as Envelope };
  }
  const decoded = decodeSubmission(m.data);
  if (!decoded.ok) return { ok: false, dead: invalid(topic, seq, decoded.error, m) };
  const headerId = m.headers?.get("Nats-Msg-Id");
  const input = decoded.value;
  const withId =
    headerId && typeof input === "object" && input !== null && !Array.isArray(input) && !("id" in input)
      ? { ...(input as object), id: headerId }
      : input;
  const result = validateSubmission(withId, {
    topic,
    source: "nats",
    topics: ctx.topics,
    maxPayloadBytes: ctx.maxPayloadBytes,
    now: () => storedAt,
    newId: () => ulid(storedAt, seededRandom(seq)),
  });
  if (result.ok) return result;
  const dead = invalid(topic, seq, result.error, m);
  dead.reason = result.reason;
  return { ok: false, dead };
}

/** The dead letter of a queued message that could not be handled at all (`reason` invalid). */
export function unreadableLetter(m: JsMsg, prefix: string, error: string): DeadLetter {
  return invalid(m.subject.slice(`${prefix}.in.`.length), m.info.streamSequence, error, m);
}

/** Dead letters keep at most this much of invalid input: enough to see what was wrong. */
const MAX_RAW_KEPT = 64 * 1024;

function invalid(topic: string, seq: number, error: string, m: JsMsg): DeadLetter {
  const raw = m.data.length > MAX_RAW_KEPT ? m.data.slice(0, MAX_RAW_KEPT) : m.data;
  return {
    id: `invalid:${seq}`,
    topic,
    reason: "invalid",
    error,
    attempts: 0,
    deadAt: Date.now(),
    raw,
    subject: m.subject,
  };
}

/** A topic that is not a valid subject token still needs a dead-letter subject. */
function safeToken(topic: string): string {
  return /^[A-Za-z0-9_-]{1,64}$/.test(topic) ? topic : "_invalid";
}

/** The delay before retry number `attempt` (1-based) on the configured schedule. */
export function backoffDelay(schedule: number[], attempt: number): number {
  return schedule[Math.min(attempt - 1, schedule.length - 1)] ?? 0;
}
