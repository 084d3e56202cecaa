/**
 * Poison messages: a stored message that keeps failing before it can be settled (it crashes or
 * stalls the actor reading it) must end as a dead letter with reason `poison`, not cycle forever.
 *
 * Two signals, both counted per message, never per actor:
 * - JetStream's delivery count. Herald gives a message back on purpose only when a node drains,
 *   so a message delivered more than `pipeline.maxDeliveries` times is stuck in some loop.
 * - Strikes. Every message an actor held when it died comes back with one more delivery, so the
 *   delivery count alone would blame the innocent messages held beside a poison one. A redelivered
 *   message is therefore read under a mark in the poison bucket: written before reading, removed
 *   once read. A mark still there when the message comes back means an actor died *while reading
 *   this message* — a strike. Messages merely held by an actor that died are never marked then,
 *   so they never collect strikes.
 *
 * First deliveries are read without a mark (the common case costs nothing); a poison message
 * therefore needs {@link POISON_STRIKES} + 1 actor deaths before it is retired.
 *
 * Pure: the caller reads and writes the marks.
 */

/** The note left in the poison bucket while a redelivered message is being read. */
export interface SuspectMark {
  /** Earlier deliveries during which an actor began reading the message and never finished. */
  strikes: number;
  /** JetStream's delivery count when the mark was written. */
  delivery: number;
  /** Who was reading it: `<node>/<actor>`. */
  reader: string;
  /** Wall-clock ms when the mark was written (shown in the dead letter, never compared). */
  at: number;
}

/** Strikes that make a message poison. */
export const POISON_STRIKES = 2;

export interface DeliveryFacts {
  /** JetStream's delivery count of this delivery (1 for the first). */
  deliveryCount: number;
  /**
   * Deliveries the stream makes of a healthy message by design (0 for the queue; 1 for an
   * exception entry, which is delivered once, put back for its retry delay, and delivered again).
   */
  plannedRedeliveries: number;
  /** `pipeline.maxDeliveries`. */
  maxDeliveries: number;
  /** The mark found in the poison bucket for this message, if any. */
  mark: SuspectMark | undefined;
  /** Why the last reader died, if its supervisor recorded it. */
  lastDeath?: string;
  /** `<node>/<actor>` about to read it. */
  reader: string;
  /** Wall-clock ms, for the new mark. */
  now: number;
}

export type DeliveryVerdict =
  /** Read the message; when `mark` is set, write it first and remove it once read. */
  | { verdict: "read"; mark: SuspectMark | undefined }
  /** Do not read it: dead-letter it with reason `poison` and this error. */
  | { verdict: "poison"; error: string };

/** What to do with one delivery of a stored message, before anything parses it. */
export function judgeDelivery(f: DeliveryFacts): DeliveryVerdict {
  const over = f.deliveryCount - f.plannedRedeliveries;
  // A mark from a delivery not before this one belongs to some other message (a recreated stream).
  const mark = f.mark !== undefined && f.mark.delivery < f.deliveryCount ? f.mark : undefined;
  const strikes = mark === undefined ? 0 : mark.strikes + 1;
  const last = mark === undefined ? "" : `; last read by ${mark.reader} at delivery ${mark.delivery}${f.lastDeath ? `, which died: ${f.lastDeath}` : ""}`;
  if (strikes >= POISON_STRIKES) {
    return { verdict: "poison", error: `the actor reading it died ${strikes} times before it could be settled${last}` };
  }
  if (over > f.maxDeliveries) {
    return {
      verdict: "poison",
      error: `delivered ${f.deliveryCount} times without being settled (pipeline.maxDeliveries = ${f.maxDeliveries})${last}`,
    };
  }
  if (f.deliveryCount <= 1 + f.plannedRedeliveries && mark === undefined) return { verdict: "read", mark: undefined };
  return { verdict: "read", mark: { strikes, delivery: f.deliveryCount, reader: f.reader, at: f.now } };
}
