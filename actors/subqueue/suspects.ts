/**
 * The poison ledger's I/O (the judgement itself is runtime/pipeline/poison.ts): before a
 * redelivered message is read, its mark goes into the poison bucket; once it has been read, the
 * mark goes away. First deliveries never touch the bucket.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { errorText } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import { judgeDelivery, type SuspectMark } from "../../runtime/pipeline/poison.js";
import { deathKey, suspectKey } from "../../runtime/names.js";

export type Admission =
  /**
   * Read the message, then await `done()` (whatever the reading's outcome) before reading the
   * next one: a mark left behind by an actor that died just after would blame this message.
   */
  | { read: true; done: () => Promise<void> }
  /** Do not read it: it is poison. */
  | { read: false; error: string };

const READ_FREELY: Admission = { read: true, done: async () => {} };

export class SuspectLedger {
  constructor(
    private readonly kv: KV,
    /** `<node>/<actor>`. */
    private readonly reader: string,
    private readonly maxDeliveries: number,
    private readonly wallNow: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * Judges one delivery of `m`. `plannedRedeliveries`: deliveries a healthy message gets by design
   * (0 on the queue, 1 on the exception queue). When the bucket cannot be reached the message is
   * read without a mark: the delivery limit still bounds it.
   */
  async admit(m: JsMsg, plannedRedeliveries: number): Promise<Admission> {
    if (this.expected(m, plannedRedeliveries)) return READ_FREELY;
    const deliveryCount = m.info.deliveryCount;
    const key = suspectKey(m.info.stream, m.info.streamSequence);
    const mark = await this.readMark(key);
    const lastDeath = mark === undefined ? undefined : await this.readDeath(mark.reader);
    const verdict = judgeDelivery({
      deliveryCount,
      plannedRedeliveries,
      maxDeliveries: this.maxDeliveries,
      mark,
      lastDeath,
      reader: this.reader,
      now: this.wallNow(),
    });
    if (verdict.verdict === "poison") {
      void this.kv.delete(key).catch(() => undefined);
      return { read: false, error: verdict.error };
    }
    if (verdict.mark === undefined) return READ_FREELY;
    try {
      await this.kv.put(key, JSON.stringify(verdict.mark));
    } catch (err) {
      this.log.debug("could not mark a redelivered message; reading it unmarked", { key, error: errorText(err) });
      return READ_FREELY;
    }
    return { read: true, done: () => this.kv.delete(key).catch(() => undefined) };
  }

  /**
   * The common case, answered without the bucket: a delivery the message was bound to get (its
   * first, or its planned retry) can have no mark, so it is read freely.
   */
  expected(m: JsMsg, plannedRedeliveries: number): boolean {
    const deliveryCount = m.info.deliveryCount;
    return deliveryCount <= 1 + plannedRedeliveries && deliveryCount <= this.maxDeliveries;
  }

  private async readMark(key: string): Promise<SuspectMark | undefined> {
    try {
      const e = await this.kv.get(key);
      if (!e || e.operation !== "PUT") return undefined;
      const v = e.json<SuspectMark>();
      return Number.isInteger(v?.strikes) && Number.isInteger(v?.delivery) && typeof v.reader === "string" ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Why the actor that last read a message died, as its supervisor recorded it. */
  private async readDeath(reader: string): Promise<string | undefined> {
    const [node, actor] = reader.split("/");
    if (!node || !actor) return undefined;
    try {
      const e = await this.kv.get(deathKey(node, actor));
      const reason = e && e.operation === "PUT" ? e.json<{ reason?: unknown }>().reason : undefined;
      return typeof reason === "string" ? reason : undefined;
    } catch {
      return undefined;
    }
  }
}
