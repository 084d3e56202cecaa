/**
 * Scheduled messages that arrive fire-and-forget. A raw publish on `herald.in.<topic>` lands in
 * the queue stream directly, whatever its `deliverAt` or `delayMs` says; the sub-queue actor that
 * reads it hands it here first. One not yet due on the server's clock moves to the scheduled
 * stream — stored there first, then acked here, so a failure in between leaves it in the queue, to
 * be moved again (the scheduled stream drops the repeat) — and the releaser brings it back when due.
 *
 * Its due time is fixed now, on the server's clock: `deliverAt`, or `delayMs` after the queue
 * stored it, written into the moved envelope as `deliverAt`. Envelopes Herald wrote itself (ingest,
 * a release, a replay) carry the `Herald-Envelope` header and are not looked at: whoever wrote them
 * already decided they are due.
 */
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../../runtime/config/index.js";
import { errorText, TooLargeError } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import { HEADER_ENVELOPE } from "../../runtime/names.js";
import { dueAt, isScheduled } from "../../runtime/pipeline/schedule.js";
import { storedAtMs } from "../../runtime/pipeline/stored.js";
import type { Envelope } from "../../runtime/pipeline/types.js";
import { releasedEnvelope, ScheduledWriter, ServerClock } from "../../runtime/scheduled/index.js";

/** A move that failed is tried again after this long (the message goes back to the stream), ms. */
const MOVE_RETRY_MS = 1000;

export class Deferrer {
  private readonly clock: ServerClock;
  private readonly writer: ScheduledWriter;

  constructor(
    nc: NatsConnection,
    config: HeraldConfig,
    prober: string,
    private readonly log: Logger,
    /** A message too large to move: the actor dead-letters it. */
    private readonly tooLarge: (m: JsMsg, error: string) => void,
  ) {
    this.clock = ServerClock.overNats(nc, config.subjectPrefix, prober, { log });
    this.writer = new ScheduledWriter(jetstream(nc), config.subjectPrefix, nc.info?.max_payload ?? 1_048_576);
  }

  start(): void {
    this.clock.start();
  }

  stop(): void {
    this.clock.stop();
  }

  /**
   * True when this takes the message over: a raw publish not yet due (or whose due time cannot be
   * judged yet, before the first clock estimate: the releaser then releases it at once if due).
   */
  take(m: JsMsg, env: Envelope): boolean {
    if (m.headers?.get(HEADER_ENVELOPE) === "1" || !isScheduled(env)) return false;
    const due = dueAt(env, storedAtMs(m));
    const now = this.clock.now();
    if (now !== undefined && due <= now) return false;
    void this.move(m, env, due);
    return true;
  }

  private async move(m: JsMsg, env: Envelope, due: number): Promise<void> {
    try {
      await this.writer.schedule(releasedEnvelope(env, due));
      m.ack();
    } catch (err) {
      if (err instanceof TooLargeError) {
        this.tooLarge(m, err.message);
        return;
      }
      this.log.warn("could not move a scheduled message to the scheduled stream; trying again", { id: env.id, error: errorText(err) });
      m.nak(MOVE_RETRY_MS);
    }
  }
}
