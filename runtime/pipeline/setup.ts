/**
 * Creates (or updates) the pipeline's streams, consumers and buckets. Every node runs it at start;
 * it is idempotent, and concurrent runs on several nodes are harmless (a create that loses the
 * race finds the winner's object and goes on).
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { channelsOf, type HeraldConfig } from "../config/index.js";
import type { Logger } from "../log.js";
import { checkStreamReplicas, ensureBucket, type Storage } from "../nats/storage.js";
import { LEGACY_CONSUMERS, RULES_DEFAULT_KEY, names, rulesKey, rateLimitKey } from "../names.js";

/** Poison marks outlive any redelivery cycle by far; older ones are stale (a recreated stream). */
const POISON_MARK_MAX_AGE_MS = 86_400_000;
/** Marks of released scheduled messages are kept a day, and at most this many. */
const RELEASED_MAX_AGE_MS = 86_400_000;
const RELEASED_MAX_MSGS = 100_000;
/** A clock probe is read back at once; a minute is plenty. */
const CLOCK_MAX_AGE_MS = 60_000;
/** Every sub-queue actor of a topic holds up to maxHeld + maxInFlight un-acked; 64 actors is the config cap. */
const MAX_ACTORS = 64;

export async function ensurePipeline(nc: NatsConnection, config: HeraldConfig, log: Logger): Promise<void> {
  const n = names(config.subjectPrefix);
  const jsm = await jetstreamManager(nc);
  const storage: Storage = { nc, replicas: config.nats.replicas, log };
  const p = config.pipeline;
  // Every stream keeps its messages on disk, refuses new ones when full (the publisher sees it)
  // rather than dropping old ones, and has no message-size limit of its own: whatever the server
  // accepts is captured, so oversize input becomes a dead letter with its reason instead of vanishing.
  const stream = (name: string, subject: string, retention: RetentionPolicy, extra: Partial<StreamConfig> = {}) =>
    ensureStream(jsm, storage, {
      name,
      subjects: [subject],
      retention,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      duplicate_window: nanos(p.duplicateWindowMs),
      max_msg_size: -1,
      num_replicas: storage.replicas,
      ...extra,
    });
  await stream(n.queueStream, n.queueSubjects, RetentionPolicy.Workqueue);
  await stream(n.exceptionStream, n.exceptionSubjects, RetentionPolicy.Workqueue);
  // Dead letters stay until replayed or purged, or until past the configured limits (0: none).
  const dl = p.deadLetters;
  await stream(n.dlqStream, n.dlqSubjects, RetentionPolicy.Limits, {
    max_age: dl.maxAge > 0 ? nanos(dl.maxAge) : 0,
    max_bytes: dl.maxBytes > 0 ? dl.maxBytes : -1,
  });

  // Scheduled delivery (runtime/scheduled/): messages wait here until due, kept until released or
  // cancelled; marks of released ones a day, to tell "already released" from "unknown"; and the
  // probes of the server's clock, each prober's latest for a minute.
  await stream(n.scheduledStream, n.scheduledSubjects, RetentionPolicy.Limits, { allow_direct: true });
  await stream(n.releasedStream, n.releasedSubjects, RetentionPolicy.Limits, {
    discard: DiscardPolicy.Old,
    max_age: nanos(RELEASED_MAX_AGE_MS),
    max_msgs_per_subject: 1,
    max_msgs: RELEASED_MAX_MSGS,
    duplicate_window: nanos(Math.min(p.duplicateWindowMs, RELEASED_MAX_AGE_MS)),
    allow_direct: true,
  });
  await stream(n.clockStream, n.clockSubjects, RetentionPolicy.Limits, {
    discard: DiscardPolicy.Old,
    max_age: nanos(CLOCK_MAX_AGE_MS),
    max_msgs_per_subject: 1,
    duplicate_window: nanos(1000),
    allow_direct: true,
  });

  // Herald 0.1 had one unfiltered consumer per stream; a work-queue stream refuses filtered
  // consumers beside it, and its un-acked messages simply go to the per-topic consumers.
  await deleteConsumer(jsm, n.queueStream, LEGACY_CONSUMERS.queue);
  await deleteConsumer(jsm, n.exceptionStream, LEGACY_CONSUMERS.exceptions);
  const consumer: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(p.ackWaitMs),
    // Never let the server give up on a message: one that hits MaxDeliver stays in the stream,
    // unseen. Herald counts deliveries itself and retires poison as dead letters (poison.ts).
    max_deliver: -1,
    max_ack_pending: Math.min(1_000_000, (p.maxHeld + p.maxInFlight) * MAX_ACTORS),
  };
  for (const topic of Object.keys(config.topics)) {
    await ensureConsumer(jsm, n.queueStream, { ...consumer, durable_name: n.queueConsumer(topic), filter_subject: n.in(topic) });
    await ensureConsumer(jsm, n.exceptionStream, { ...consumer, durable_name: n.exceptionConsumer(topic), filter_subject: n.exc(topic) });
  }
  await ensureBucket(storage, n.poisonBucket, { history: 1, ttl: POISON_MARK_MAX_AGE_MS });
  await seedRules(await ensureBucket(storage, n.rulesBucket, { history: 5 }), config);
  await ensureBucket(storage, n.recipientsBucket, { history: 3 });
  await ensureBucket(storage, n.endpointsBucket, { history: 5 });
  // An sse topic's pushes, kept for clients that reconnect (Last-Event-ID) or come online later:
  // a cache, so the oldest go first, by age and per recipient.
  for (const [topic, topicConfig] of Object.entries(config.topics)) {
    // A fan-out topic has at most one sse channel (checked with the config).
    const t = channelsOf(topicConfig).find((c) => c.channel === "sse");
    if (t?.channel !== "sse") continue;
    await stream(n.sseStream(topic), n.sseSubjects(topic), RetentionPolicy.Limits, {
      discard: DiscardPolicy.Old,
      max_age: nanos(t.retainMs),
      max_msgs_per_subject: t.retainPerRecipient,
    });
  }
}

async function ensureStream(jsm: JetStreamManager, storage: Storage, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  const info = await jsm.streams.info(cfg.name).catch(orNotFound(JetStreamApiCodes.StreamNotFound));
  if (info === undefined) {
    const made = await jsm.streams.add(cfg).catch((err) => err as Error);
    if (!(made instanceof Error)) return;
    // Another node created it in between; any other failure shows when we look again.
    if ((await jsm.streams.info(cfg.name).catch(() => undefined)) === undefined) throw made;
    return;
  }
  const c = info.config;
  checkStreamReplicas(storage, c);
  const keys = ["duplicate_window", "max_msg_size", "max_age", "max_bytes", "max_msgs_per_subject", "subjects"] as const;
  const changed = keys.filter((k) => cfg[k] !== undefined && JSON.stringify(c[k]) !== JSON.stringify(cfg[k]));
  if (changed.length > 0) {
    await jsm.streams.update(cfg.name, { ...c, ...Object.fromEntries(changed.map((k) => [k, cfg[k]])) } as StreamConfig);
  }
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, cfg: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  const info = await jsm.consumers.info(stream, cfg.durable_name).catch(orNotFound(JetStreamApiCodes.ConsumerNotFound));
  if (info === undefined) {
    const made = await jsm.consumers.add(stream, cfg).catch((err) => err as Error);
    if (!(made instanceof Error)) return;
    if ((await jsm.consumers.info(stream, cfg.durable_name).catch(() => undefined)) === undefined) throw made;
    return;
  }
  if (info.config.ack_wait !== cfg.ack_wait || info.config.max_ack_pending !== cfg.max_ack_pending) {
    await jsm.consumers.update(stream, cfg.durable_name, { ack_wait: cfg.ack_wait, max_ack_pending: cfg.max_ack_pending });
  }
}

async function deleteConsumer(jsm: JetStreamManager, stream: string, name: string): Promise<void> {
  await jsm.consumers.delete(stream, name).catch(orNotFound(JetStreamApiCodes.ConsumerNotFound));
}

/** A `.catch` that turns the JetStream API error `code` into undefined and rethrows anything else. */
function orNotFound(code: number) {
  return (err: unknown): undefined => {
    if (err instanceof JetStreamApiError && err.code === code) return undefined;
    throw err;
  };
}

/** The config's rules seed the bucket once; after that `herald rules set` owns them. */
async function seedRules(kv: KV, config: HeraldConfig): Promise<void> {
  const seed = async (key: string, value: unknown) => {
    try {
      await kv.create(key, JSON.stringify(value));
    } catch {
      // Already set (by an earlier start or by `herald rules set`): keep it.
    }
  };
  await seed(RULES_DEFAULT_KEY, config.rules);
  for (const [topic, t] of Object.entries(config.topics)) {
    if (t.rules) await seed(rulesKey(topic), t.rules);
    if (t.rateLimit) await seed(rateLimitKey(topic), t.rateLimit);
  }
}
