/**
 * A topic lane on an injected clock: sub-queue windows run on the monotonic clock from when the
 * lane received each message, so the wall clock — however far off — changes nothing.
 */
import type { JsMsg } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { batchSize, TopicLane, type Held } from "../actors/subqueue/lane.js";
import { RulesView } from "../actors/subqueue/rules-view.js";
import type { Clock } from "../runtime/clock.js";
import { createLogger } from "../runtime/log.js";

/** A clock whose monotonic time the test moves, with the wall clock `skewMs` away from it. */
function fakeClock(skewMs: number): Clock & { advance(ms: number): void } {
  let mono = 1000;
  return { monotonic: () => mono, wall: () => 1_700_000_000_000 + mono + skewMs, advance: (ms) => (mono += ms) };
}

const held = (id: string): Held => ({ m: {} as JsMsg, env: { id, topic: "t", data: {}, createdAt: 0, source: "submit", attempts: 0 } });

/** Ids the lane releases now. */
function drain(lane: TopicLane): string[] {
  const out: string[] = [];
  for (let h = lane.next(); h; h = lane.next()) out.push(h.env.id);
  return out;
}

describe("TopicLane clocks", () => {
  for (const skewMs of [0, -5000, 5000, -86_400_000]) {
    it(`closes a sub-queue maxAgeMs after its first message, by the monotonic clock (wall clock ${skewMs} ms off)`, () => {
      const clock = fakeClock(skewMs);
      // A lifo primary: the sub-queue waits to close (a fifo one would stream each message at once).
      const view = new RulesView({ primary: "lifo", secondary: "fifo", maxCount: 100, maxAgeMs: 100 }, createLogger("test"), () => {});
      const lane = new TopicLane("t", view, clock, 64);
      lane.add(held("m1"));
      clock.advance(60);
      lane.add(held("m2"));
      expect(drain(lane)).toEqual([]);
      expect(lane.scheduler.nextDeadlineMs()).toBe(1100);
      clock.advance(39);
      expect(drain(lane)).toEqual([]);
      clock.advance(1);
      expect(drain(lane)).toEqual(["m2", "m1"]);
      expect(lane.held).toBe(0);
    });
  }

  it("due retries leave before new messages, and count against the lane's budget", () => {
    const clock = fakeClock(0);
    const view = new RulesView({ primary: "fifo", secondary: "fifo", maxCount: 1 }, createLogger("test"), () => {});
    const lane = new TopicLane("t", view, clock, 64);
    lane.add(held("new"));
    lane.addRetry(held("retry"));
    expect(lane.held).toBe(2);
    expect(drain(lane)).toEqual(["retry", "new"]);
  });
});

describe("batchSize", () => {
  it("is half the in-flight budget, so two batches overlap, up to 64", () => {
    expect([1, 2, 3, 8, 64, 128, 1000].map(batchSize)).toEqual([1, 1, 2, 4, 32, 64, 64]);
  });
});
