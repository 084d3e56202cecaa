/**
 * Collected items into the queue. Each item is validated like any submission (the one check of
 * envelope.ts) and queued with its derived id as `Nats-Msg-Id`; an item that is not a valid message
 * (unknown topic in its topic column, a "__proto__" key in a json column…) becomes a dead letter
 * with its reason, so it is neither lost silently nor allowed to block the collector forever.
 * A batch counts as done only when every publish of it is acknowledged.
 */
import type { TopicConfig } from "../../runtime/config/schema.js";
import { TooLargeError } from "../../runtime/errors.js";
import { validateSubmission, type DataLimits } from "../../runtime/pipeline/envelope.js";
import type { QueueIO } from "../../runtime/pipeline/queue-io.js";
import type { DeadLetter } from "../../runtime/pipeline/streams.js";
import type { CollectedItem } from "./source.js";

export interface EnqueueContext {
  /** `collector:<name>`. */
  source: `collector:${string}`;
  topics: Record<string, TopicConfig>;
  limits: DataLimits;
  /** ms since epoch; becomes `createdAt`. */
  now: () => number;
}

export interface EnqueueResult {
  /** Newly queued messages. */
  queued: number;
  /** Publishes the queue recognised as already queued within its duplicate window. */
  duplicates: number;
  deadLettered: number;
}

/**
 * Queues a batch. Publishes go out together (in item order, on one connection, so the stream keeps
 * that order) and are all awaited.
 * @throws the first publish error, once every publish has settled: nothing of the batch counts.
 */
export async function enqueueBatch(io: QueueIO, items: CollectedItem[], ctx: EnqueueContext): Promise<EnqueueResult> {
  const result: EnqueueResult = { queued: 0, duplicates: 0, deadLettered: 0 };
  const publishes = items.map(async (item) => {
    const v = validateSubmission(item.submission, {
      source: ctx.source,
      topics: ctx.topics,
      limits: ctx.limits,
      now: ctx.now,
      newId: () => item.id,
    });
    if (v.ok) {
      try {
        const ack = await io.enqueue(v.envelope, item.id);
        if (ack.duplicate) result.duplicates++;
        else result.queued++;
        return;
      } catch (err) {
        // Too large for the server: permanent, so it must not hold up the batch forever.
        if (!(err instanceof TooLargeError)) throw err;
        await io.deadLetter(deadLetter(item, "too-large", err.message, ctx), item.id);
        result.deadLettered++;
        return;
      }
    }
    await io.deadLetter(deadLetter(item, v.reason, v.error, ctx), item.id);
    result.deadLettered++;
  });
  const settled = await Promise.allSettled(publishes);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return result;
}

function deadLetter(item: CollectedItem, reason: "invalid" | "unknown-topic" | "too-large", error: string, ctx: EnqueueContext): DeadLetter {
  const topic = (item.submission as { topic?: unknown } | null)?.topic;
  let raw: Uint8Array | undefined;
  try {
    raw = new TextEncoder().encode(JSON.stringify(item.submission) ?? "null");
  } catch {
    raw = undefined;
  }
  return {
    id: item.id,
    topic: typeof topic === "string" ? topic : "",
    reason,
    error: `${ctx.source}: ${error}`,
    attempts: 0,
    deadAt: ctx.now(),
    ...(raw ? { raw } : {}),
  };
}
