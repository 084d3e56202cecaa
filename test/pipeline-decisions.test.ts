/**
 * The pipeline's pure decisions, case by case: when a delivery is poison, what an outcome settles
 * to, how topics share the in-flight budget, whether a payload limit fits the server, and when
 * the dead-letter stream warns.
 */
import { describe, expect, it } from "vitest";
import { deadLetterWarnings } from "../runtime/supervisor/cluster-status.js";
import { judgeDelivery, POISON_STRIKES, type DeliveryFacts, type SuspectMark } from "../runtime/pipeline/poison.js";
import { payloadRoomProblem } from "../runtime/pipeline/queue-io.js";
import { backoffDelay, decideSettlement } from "../runtime/pipeline/settle.js";
import type { Envelope } from "../runtime/pipeline/types.js";

const facts = (over: Partial<DeliveryFacts>): DeliveryFacts => ({
  deliveryCount: 1,
  plannedRedeliveries: 0,
  maxDeliveries: 10,
  mark: undefined,
  reader: "n1/subqueue-0",
  now: 1_700_000_000_000,
  ...over,
});
const mark = (strikes: number, delivery: number): SuspectMark => ({ strikes, delivery, reader: "n2/subqueue-1", at: 1 });

describe("judgeDelivery", () => {
  it("a first delivery is read without a mark", () => {
    expect(judgeDelivery(facts({}))).toEqual({ verdict: "read", mark: undefined });
  });

  it("a redelivery is read under a mark with no strikes when none was left", () => {
    expect(judgeDelivery(facts({ deliveryCount: 2 }))).toEqual({
      verdict: "read",
      mark: { strikes: 0, delivery: 2, reader: "n1/subqueue-0", at: 1_700_000_000_000 },
    });
  });

  it("a mark left at an earlier delivery is a strike: its reader died while reading it", () => {
    expect(judgeDelivery(facts({ deliveryCount: 3, mark: mark(0, 2) }))).toMatchObject({ verdict: "read", mark: { strikes: 1, delivery: 3 } });
  });

  it(`${POISON_STRIKES} strikes make it poison, and the error says who read it last and how it died`, () => {
    const v = judgeDelivery(facts({ deliveryCount: 4, mark: mark(1, 3), lastDeath: "thread error: boom" }));
    expect(v).toEqual({
      verdict: "poison",
      error: "the actor reading it died 2 times before it could be settled; last read by n2/subqueue-1 at delivery 3, which died: thread error: boom",
    });
  });

  it("a mark from the same or a later delivery is stale (a recreated stream) and ignored", () => {
    expect(judgeDelivery(facts({ deliveryCount: 3, mark: mark(5, 3) }))).toMatchObject({ verdict: "read", mark: { strikes: 0 } });
    expect(judgeDelivery(facts({ deliveryCount: 3, mark: mark(5, 9) }))).toMatchObject({ verdict: "read", mark: { strikes: 0 } });
  });

  it("past maxDeliveries it is poison even without strikes (stuck in some loop)", () => {
    expect(judgeDelivery(facts({ deliveryCount: 10 }))).toMatchObject({ verdict: "read" });
    expect(judgeDelivery(facts({ deliveryCount: 11 }))).toEqual({
      verdict: "poison",
      error: "delivered 11 times without being settled (pipeline.maxDeliveries = 10)",
    });
  });

  it("planned redeliveries (an exception entry's delay) are neither marked nor counted", () => {
    expect(judgeDelivery(facts({ deliveryCount: 2, plannedRedeliveries: 1 }))).toEqual({ verdict: "read", mark: undefined });
    expect(judgeDelivery(facts({ deliveryCount: 3, plannedRedeliveries: 1 }))).toMatchObject({ verdict: "read", mark: { strikes: 0 } });
    expect(judgeDelivery(facts({ deliveryCount: 11, plannedRedeliveries: 1 }))).toMatchObject({ verdict: "read" });
    expect(judgeDelivery(facts({ deliveryCount: 12, plannedRedeliveries: 1 }))).toMatchObject({ verdict: "poison" });
  });
});

const env = (attempts: number): Envelope => ({ id: "m1", topic: "t", data: {}, createdAt: 0, source: "submit", attempts });
const policy = { backoffMs: [1000, 5000, 30_000], maxAttempts: 3 };

describe("decideSettlement", () => {
  it("delivered is an ack", () => {
    expect(decideSettlement({ outcome: "delivered" }, env(1), policy)).toEqual({ action: "ack" });
  });

  it("a permanent failure is a dead letter with its reason", () => {
    expect(decideSettlement({ outcome: "dead", reason: "render", error: "no such variable" }, env(1), policy)).toEqual({
      action: "dead",
      reason: "render",
      error: "no such variable",
    });
  });

  it("a transient failure is retried on the schedule, the receiver's Retry-After first", () => {
    expect(decideSettlement({ outcome: "retry", reason: "503" }, env(1), policy)).toEqual({ action: "retry", delayMs: 1000, error: "503" });
    expect(decideSettlement({ outcome: "retry", reason: "503" }, env(2), policy)).toMatchObject({ delayMs: 5000 });
    expect(decideSettlement({ outcome: "retry", reason: "429", retryAfterMs: 7000 }, env(1), policy)).toMatchObject({ delayMs: 7000 });
  });

  it("the last attempt's failure exhausts the message", () => {
    expect(decideSettlement({ outcome: "retry", reason: "timeout" }, env(3), policy)).toEqual({
      action: "dead",
      reason: "exhausted",
      error: "gave up after 3 attempts; last error: timeout",
    });
  });

  it("backoffDelay repeats the last step", () => {
    expect([1, 2, 3, 4, 9].map((n) => backoffDelay(policy.backoffMs, n))).toEqual([1000, 5000, 30_000, 30_000, 30_000]);
    expect(backoffDelay([], 1)).toBe(0);
  });
});

describe("payloadRoomProblem", () => {
  it("the defaults fit the server's default max_payload", () => {
    expect(payloadRoomProblem(262_144, 1_048_576)).toBeUndefined();
    expect(payloadRoomProblem(1_048_576 - 9216, 1_048_576)).toBeUndefined();
  });

  it("a limit without room for the envelope names both figures and the fix", () => {
    expect(payloadRoomProblem(1_048_576, 1_048_576)).toBe(
      "limits.maxPayloadBytes = 1048576 does not fit the NATS server's max_payload of 1048576 bytes " +
        "(a message needs 9216 bytes more for its envelope and headers): lower limits.maxPayloadBytes to at most 1039360, " +
        "or raise max_payload in the nats-server config",
    );
  });
});

describe("deadLetterWarnings", () => {
  it("no cap, or under 80 %: no warning", () => {
    expect(deadLetterWarnings(10 ** 9, -1)).toEqual([]);
    expect(deadLetterWarnings(799, 1000)).toEqual([]);
  });

  it("from 80 % it warns, saying what a full stream does", () => {
    expect(deadLetterWarnings(800, 1000)).toEqual([
      {
        code: "DEAD_LETTERS_NEAR_LIMIT",
        message:
          "dead letters use 800 of 1000 bytes (80%, pipeline.deadLetters.maxBytes); when full, new dead letters are refused and their messages wait in the queue: replay or purge them (herald dlq), or raise the limit",
      },
    ]);
    expect(deadLetterWarnings(1200, 1000)[0]!.message).toContain("(100%,");
  });
});
