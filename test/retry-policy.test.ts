/**
 * Per-topic retry schedules (`topics.<name>.retry`): how a topic's keys fall over
 * `pipeline.retry`, what `abortOn` does to a settlement, and what the config accepts.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../runtime/config/index.js";
import { decideSettlement, retryPolicy } from "../runtime/pipeline/settle.js";
import type { Envelope } from "../runtime/pipeline/types.js";

const pipeline = { backoffMs: [1000, 5000], maxAttempts: 6 };
const env = (attempts: number): Envelope => ({ id: "m1", topic: "t", data: {}, createdAt: 0, source: "submit", attempts });

describe("retryPolicy", () => {
  it("is the pipeline's when the topic sets none", () => {
    expect(retryPolicy(pipeline, undefined)).toBe(pipeline);
    expect(retryPolicy(pipeline, {})).toEqual(pipeline);
  });

  it("takes each key the topic sets and the pipeline's for the others", () => {
    expect(retryPolicy(pipeline, { backoffMs: [200] })).toEqual({ backoffMs: [200], maxAttempts: 6 });
    expect(retryPolicy(pipeline, { maxAttempts: 3 })).toEqual({ backoffMs: [1000, 5000], maxAttempts: 3 });
    expect(retryPolicy(pipeline, { backoffMs: [200], maxAttempts: 3, abortOn: [503] })).toEqual({ backoffMs: [200], maxAttempts: 3, abortOn: [503] });
  });
});

describe("decideSettlement under a topic's policy", () => {
  const policy = retryPolicy(pipeline, { backoffMs: [200], maxAttempts: 3, abortOn: [503, 429] });

  it("retries on the topic's schedule until its maxAttempts, then exhausts", () => {
    const failure = { outcome: "retry", reason: "webhook answered 500", status: 500 } as const;
    expect(decideSettlement(failure, env(1), policy)).toEqual({ action: "retry", delayMs: 200, error: "webhook answered 500" });
    expect(decideSettlement(failure, env(2), policy)).toEqual({ action: "retry", delayMs: 200, error: "webhook answered 500" });
    expect(decideSettlement(failure, env(3), policy)).toEqual({ action: "dead", reason: "exhausted", error: "gave up after 3 attempts; last error: webhook answered 500" });
    // The same failure under the pipeline's policy still has retries left.
    expect(decideSettlement(failure, env(3), pipeline)).toEqual({ action: "retry", delayMs: 5000, error: "webhook answered 500" });
  });

  it("a status in abortOn is a dead letter (rejected) at the first attempt, Retry-After or not", () => {
    expect(decideSettlement({ outcome: "retry", reason: "webhook answered 503", status: 503 }, env(1), policy)).toEqual({
      action: "dead",
      reason: "rejected",
      error: "webhook answered 503 (503 is in the topic's retry.abortOn: not retried)",
    });
    expect(decideSettlement({ outcome: "retry", reason: "429", status: 429, retryAfterMs: 5000 }, env(1), policy)).toMatchObject({ action: "dead", reason: "rejected" });
  });

  it("a status not in abortOn, or a failure without a status, is retried", () => {
    expect(decideSettlement({ outcome: "retry", reason: "502", status: 502 }, env(1), policy)).toMatchObject({ action: "retry" });
    expect(decideSettlement({ outcome: "retry", reason: "timed out" }, env(1), policy)).toMatchObject({ action: "retry" });
    expect(decideSettlement({ outcome: "retry", reason: "503", status: 503 }, env(1), pipeline)).toMatchObject({ action: "retry" });
  });

  it("delivered and dead outcomes are not touched by the policy", () => {
    expect(decideSettlement({ outcome: "delivered" }, env(3), policy)).toEqual({ action: "ack" });
    expect(decideSettlement({ outcome: "dead", reason: "rejected", error: "the receiver asked to stop retries" }, env(1), policy)).toEqual({
      action: "dead",
      reason: "rejected",
      error: "the receiver asked to stop retries",
    });
  });
});

const base = () => ({ cluster: "c1", nats: { servers: ["nats://127.0.0.1:4222"] }, nodes: [{ name: "a" }] });
const hook = { channel: "webhook", url: "https://example.com/h" };

function issues(topics: Record<string, unknown>): { path: string; message: string }[] {
  try {
    parseConfig({ ...base(), topics }, "/tmp");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, but the config was accepted");
}

describe("topics.<name>.retry in the config", () => {
  it("is kept as written, without defaults (the pipeline's fill in at run time)", () => {
    const config = parseConfig(
      { ...base(), topics: { a: { ...hook, retry: { backoffMs: [200], maxAttempts: 3, abortOn: [503] } }, b: { channel: "nats", retry: { maxAttempts: 2 } }, c: { channel: "nats" } } },
      "/tmp",
    );
    expect(config.topics.a!.retry).toEqual({ backoffMs: [200], maxAttempts: 3, abortOn: [503] });
    expect(config.topics.b!.retry).toEqual({ maxAttempts: 2 });
    expect(config.topics.c!.retry).toBeUndefined();
    expect(config.pipeline.retry).toEqual({ backoffMs: [1000, 5000, 30_000, 120_000, 600_000], maxAttempts: 6 });
  });

  it("names the key and the bound of every bad value", () => {
    const found = issues({
      a: { ...hook, retry: { backoffMs: [], maxAttempts: 0 } },
      b: { ...hook, retry: { backoffMs: [-1, 1.5], abortOn: [200, 600, "503"] } },
      c: { ...hook, retry: { maxAttemps: 3 } },
    });
    expect(found).toEqual(
      expect.arrayContaining([
        { path: "topics.a.retry.backoffMs", message: "must not be empty" },
        { path: "topics.a.retry.maxAttempts", message: "must be an integer ≥ 1 (got 0)" },
        { path: "topics.b.retry.backoffMs[0]", message: "must be an integer ≥ 0 (got -1)" },
        { path: "topics.b.retry.backoffMs[1]", message: "must be an integer from 0 to 86400000 (got 1.5)" },
        { path: "topics.b.retry.abortOn[0]", message: "must be an integer ≥ 400 (got 200)" },
        { path: "topics.b.retry.abortOn[1]", message: "must be an integer ≤ 599 (got 600)" },
        { path: "topics.b.retry.abortOn[2]", message: 'must be an integer from 400 to 599 (got "503")' },
        { path: "topics.c.retry", message: 'unknown key "maxAttemps" (did you mean "maxAttempts"?)' },
      ]),
    );
  });

  it("refuses abortOn on a topic whose channel is not a webhook, saying why", () => {
    expect(issues({ n: { channel: "nats", retry: { abortOn: [503] } } })).toEqual([
      { path: "topics.n.retry.abortOn", message: expect.stringMatching(/^applies to webhook channels only/) },
    ]);
  });
});

describe("the README's example", () => {
  it("parses as written, with the schedule it describes", async () => {
    const { readFile } = await import("node:fs/promises");
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("**Per-topic retry schedules.**"));
    const block = /```json\n([\s\S]*?)```/.exec(section)![1]!;
    const config = parseConfig({ ...base(), topics: JSON.parse(`{${block}}`) }, "/tmp");
    expect(config.topics.orders!.retry).toEqual({ backoffMs: [200, 1000, 5000], maxAttempts: 4, abortOn: [501] });
    expect(retryPolicy(config.pipeline.retry, config.topics.orders!.retry)).toEqual({ backoffMs: [200, 1000, 5000], maxAttempts: 4, abortOn: [501] });
  });
});
