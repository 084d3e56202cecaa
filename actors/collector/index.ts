/**
 * The collector actor: the seed's timing message collection unit, run as a master duty. The
 * supervisor starts collector actors only on the node holding the master lease, with the lease
 * epoch, and stops them the moment the lease is lost. Collector actor i of n runs the configured
 * collectors whose index % n === i; each one is a {@link CollectorRunner} polling its source every
 * intervalMs, resuming from its fenced checkpoint (checkpoints.ts).
 *
 * Status: the actor's counters (processed = messages queued, failed = failed collections) and
 * gauges go to the supervisor as usual; each collector also writes a status record with its last
 * error to the collectors bucket (`status.<name>`), which `herald status` reads.
 */
import { jetstream } from "@nats-io/jetstream";
import { ensureBucket } from "../../runtime/nats/storage.js";
import { Actor, type ActorContext, type ActorCounters, type ActorFactory } from "../../runtime/actor/index.js";
import type { Counter, Gauge } from "../../runtime/metrics/meter.js";
import type { CollectorConfig } from "../../runtime/config/schema.js";
import type { Logger } from "../../runtime/log.js";
import { QueueIO } from "../../runtime/pipeline/queue-io.js";
import { CheckpointStore } from "./checkpoints.js";
import { HttpSource } from "./http.js";
import { PostgresSource } from "./postgres.js";
import { CollectorRunner } from "./runner.js";
import type { Source } from "./source.js";
import { names } from "../../runtime/names.js";

/** Revisions kept per key of the collectors bucket: a few checkpoints back, for forensics. */
const BUCKET_HISTORY = 5;

class CollectorActor extends Actor {
  private runners: CollectorRunner[] = [];
  /** Per runner: its metric handles and the counts already added to them. */
  private readonly metered = new Map<CollectorRunner, { rows: Counter; errors: Counter; lag: Gauge; rowsSeen: number; errorsSeen: number }>();

  override async start(): Promise<void> {
    const { init, config, nc, log } = this.ctx;
    const count = Math.max(1, config.nodes.find((n) => n.name === init.node)?.actors.collector ?? 1);
    const mine = config.collectors.map((c, i) => ({ c, i })).filter(({ i }) => i % count === init.index);
    if (mine.length === 0) {
      log.debug("no collectors assigned to this actor");
      return;
    }
    if (init.epoch === undefined) {
      // Collectors are a master duty: without the lease epoch there is no fencing token to write with.
      log.error("collector actor started without a master epoch: not collecting");
      return;
    }
    const kv = await ensureBucket({ nc, replicas: config.nats.replicas, log }, names(config.subjectPrefix).collectorsBucket, { history: BUCKET_HISTORY });
    const io = new QueueIO(jetstream(nc), {
      prefix: config.subjectPrefix,
      maxPayload: nc.info?.max_payload ?? 1_048_576,
      isTopic: (t) => Object.hasOwn(config.topics, t),
    });
    for (const { c, i } of mine) {
      const runner = new CollectorRunner({
        config: c,
        source: createSource(c, `collectors[${i}]`, log),
        checkpoints: new CheckpointStore({ kv, collector: c.name, epoch: init.epoch, node: init.node }),
        io,
        kv,
        enqueue: {
          source: `collector:${c.name}`,
          topics: config.topics,
          limits: config.limits,
          now: Date.now,
        },
        node: init.node,
        actor: init.id,
        log,
      });
      this.runners.push(runner);
      const { meter } = this.ctx;
      this.metered.set(runner, {
        rows: meter.counter("herald_collector_rows_total", { collector: c.name }),
        errors: meter.counter("herald_collector_errors_total", { collector: c.name }),
        lag: meter.gauge("herald_collector_lag_seconds", { collector: c.name }),
        rowsSeen: 0,
        errorsSeen: 0,
      });
      runner.start();
    }
    log.info("collecting", { collectors: mine.map(({ c }) => c.name).join(","), epoch: init.epoch });
  }

  override async drain(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop()));
  }

  override stats(): ActorCounters {
    let processed = 0;
    let failed = 0;
    const gauges = { collectors: this.runners.length, failing: 0, fenced: 0, duplicates: 0, deadLettered: 0 };
    for (const r of this.runners) {
      this.meterRunner(r);
      processed += r.queued;
      failed += r.failedCollections;
      gauges.duplicates += r.duplicates;
      gauges.deadLettered += r.deadLettered;
      if (r.state === "failing") gauges.failing++;
      if (r.state === "fenced") gauges.fenced++;
    }
    return { ...gauges, processed, failed };
  }

  /** Brings a runner's metrics up to date (called with every report, which reads stats first). */
  private meterRunner(r: CollectorRunner): void {
    const m = this.metered.get(r);
    if (!m) return;
    m.rows.add(r.queued - m.rowsSeen);
    m.rowsSeen = r.queued;
    m.errors.add(r.failedCollections - m.errorsSeen);
    m.errorsSeen = r.failedCollections;
    const last = r.lastSuccess;
    m.lag.set(last === undefined ? 0 : Math.max(0, (Date.now() - last) / 1000));
  }
}

function createSource(c: CollectorConfig, where: string, log: Logger): Source {
  return c.kind === "postgres" ? new PostgresSource(c, where, log.child(c.name)) : new HttpSource(c);
}

export const createActor: ActorFactory = (ctx: ActorContext) => new CollectorActor(ctx);
