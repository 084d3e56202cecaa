/**
 * Creates (or updates) the pipeline's streams, consumers and rules bucket. Every node runs it at
 * start; it is idempotent, and concurrent runs on several nodes are harmless.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import { pipelineNames, RULES_DEFAULT_KEY, rulesKey } from "./streams.js";


export async function ensurePipeline(nc: NatsConnection, config: HeraldConfig): Promise<void> {
  const n = pipelineNames(config.subjectPrefix);
  const jsm = await jetstreamManager(nc);
  const p = config.pipeline;
  // Every stream keeps its messages on disk, refuses new ones when full (the publisher sees it)
  // rather than dropping old ones, and has no size limit of its own: whatever the server accepts
  // is captured, so oversize input becomes a dead letter with its reason instead of vanishing.
  const stream = (name: string, subject: string, retention: RetentionPolicy) =>
    ensureStream(jsm, {
      name,
      subjects: [subject],
      retention,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      duplicate_window: nanos(p.duplicateWindowMs),
      max_msg_size: -1,
    });
  await stream(n.queueStream, n.queueSubjects, RetentionPolicy.Workqueue);
  await stream(n.exceptionStream, `${config.subjectPrefix}.exc.>`, RetentionPolicy.Workqueue);
  // Dead letters stay until replayed or purged.
  await stream(n.dlqStream, `${config.subjectPrefix}.dlq.>`, RetentionPolicy.Limits);
  const consumer = {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(p.ackWaitMs),
    max_deliver: -1,
  };
  // Every sub-queue actor holds up to maxHeld + maxInFlight un-acked; 64 actors is the config cap.
  const maxAckPending = Math.min(1_000_000, (p.maxHeld + p.maxInFlight) * 64);
  await ensureConsumer(jsm, n.queueStream, { ...consumer, durable_name: n.queueConsumer, max_ack_pending: maxAckPending });
  await ensureConsumer(jsm, n.exceptionStream, { ...consumer, durable_name: n.exceptionConsumer, max_ack_pending: maxAckPending });
  await seedRules(nc, config);
}

async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    const info = await jsm.streams.info(cfg.name);
    const c = info.config;
    if (c.duplicate_window !== cfg.duplicate_window || c.max_msg_size !== cfg.max_msg_size) {
      await jsm.streams.update(cfg.name, { ...c, duplicate_window: cfg.duplicate_window, max_msg_size: cfg.max_msg_size });
    }
    return;
  } catch (err) {
    if (!/not found/i.test(errorText(err))) throw err;
  }
  try {
    await jsm.streams.add(cfg);
  } catch (err) {
    // Another node created it in between.
    if (!/already in use|exists/i.test(errorText(err))) throw err;
  }
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, cfg: Parameters<JetStreamManager["consumers"]["add"]>[1]): Promise<void> {
  try {
    const info = await jsm.consumers.info(stream, cfg.durable_name!);
    if (info.config.ack_wait !== cfg.ack_wait || info.config.max_ack_pending !== cfg.max_ack_pending) {
      await jsm.consumers.update(stream, cfg.durable_name!, { ack_wait: cfg.ack_wait, max_ack_pending: cfg.max_ack_pending });
    }
    return;
  } catch (err) {
    if (!/not found/i.test(errorText(err))) throw err;
  }
  try {
    await jsm.consumers.add(stream, cfg);
  } catch (err) {
    if (!/already (in use|exists)|exists/i.test(errorText(err))) throw err;
  }
}

/** The config's rules seed the bucket once; after that `herald rules set` owns them. */
async function seedRules(nc: NatsConnection, config: HeraldConfig): Promise<void> {
  const kv = await new Kvm(nc).create(pipelineNames(config.subjectPrefix).rulesBucket, { history: 5 });
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
  }
}
