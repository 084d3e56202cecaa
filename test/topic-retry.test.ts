/**
 * Per-topic retry schedules and the receiver's abort, end to end on a real cluster: topics whose
 * webhooks always answer 503 are retried on their own schedules, and an answer the topic or the
 * receiver marks as final stops retries at the first attempt.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster, allRunning } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { startWebhookServer, type WebhookServer } from "./helpers/webhook.js";

interface Row {
  id: string;
  topic: string;
  reason: string;
  error: string;
  attempts: number;
}

describe("topics.<name>.retry on a cluster", () => {
  let cluster: TestCluster;
  const hooks: Record<string, WebhookServer> = {};

  beforeAll(async () => {
    hooks.strict = await startWebhookServer(() => 503);
    hooks.lenient = await startWebhookServer(() => 503);
    hooks.aborting = await startWebhookServer(() => ({ status: 503, headers: { "webhook-delivery": "Abort" } }));
    hooks.statuses = await startWebhookServer(() => 503);
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        pipeline: { retry: { backoffMs: [1000], maxAttempts: 4 } },
        topics: {
          strict: { channel: "webhook", url: hooks.strict.url, retry: { backoffMs: [200], maxAttempts: 3 } },
          lenient: { channel: "webhook", url: hooks.lenient.url },
          aborting: { channel: "webhook", url: hooks.aborting.url },
          statuses: { channel: "webhook", url: hooks.statuses.url, retry: { abortOn: [503] } },
        },
      },
    });
    cluster.startAll();
    await cluster.waitStatus("running", allRunning, 30_000);
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await Promise.all(Object.values(hooks).map((h) => h.close()));
  });

  const publish = async (topic: string): Promise<string> => {
    const r = await cluster.cli(["publish", topic, "--data", '{"n":1}', "-c", cluster.configFile]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim().split(/\s+/).at(-1)!;
  };

  const letterOf = (id: string) =>
    waitFor(
      async () => {
        const r = await cluster.cli(["dlq", "list", "--json", "-c", cluster.configFile]);
        return (JSON.parse(r.stdout || "[]") as Row[]).find((l) => l.id === id);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `the dead letter of ${id}` },
    );

  const gaps = (h: WebhookServer) => h.deliveries.slice(1).map((d, i) => d.at - h.deliveries[i]!.at);

  it("a topic with retry { backoffMs: [200], maxAttempts: 3 } is exhausted after exactly 3 attempts, 200 ms apart", async () => {
    const id = await publish("strict");
    const letter = await letterOf(id);
    expect(letter).toMatchObject({ topic: "strict", reason: "exhausted", attempts: 3, error: expect.stringMatching(/^gave up after 3 attempts; last error: webhook answered 503/) });
    expect(hooks.strict.deliveries.map((d) => d.headers["webhook-id"])).toEqual([id, id, id]);
    for (const gap of gaps(hooks.strict)) {
      expect(gap).toBeGreaterThanOrEqual(180);
      // The pipeline's schedule would wait 1000 ms.
      expect(gap).toBeLessThan(900);
    }
  });

  it("a topic without retry keeps the pipeline's schedule: 4 attempts, 1 s apart", async () => {
    const id = await publish("lenient");
    const letter = await letterOf(id);
    expect(letter).toMatchObject({ topic: "lenient", reason: "exhausted", attempts: 4 });
    expect(hooks.lenient.deliveries).toHaveLength(4);
    for (const gap of gaps(hooks.lenient)) expect(gap).toBeGreaterThanOrEqual(950);
  });

  it("an answer with webhook-delivery: abort stops at attempt 1: a dead letter, rejected, saying the receiver asked", async () => {
    const id = await publish("aborting");
    const letter = await letterOf(id);
    expect(letter).toMatchObject({
      topic: "aborting",
      reason: "rejected",
      attempts: 1,
      error: expect.stringMatching(/^the receiver asked to stop retries \(webhook-delivery: abort\): webhook answered 503/),
    });
    expect(hooks.aborting.deliveries).toHaveLength(1);
  });

  it("a status in the topic's retry.abortOn stops at attempt 1", async () => {
    const id = await publish("statuses");
    const letter = await letterOf(id);
    expect(letter).toMatchObject({ topic: "statuses", reason: "rejected", attempts: 1, error: expect.stringContaining("503 is in the topic's retry.abortOn") });
    expect(hooks.statuses.deliveries).toHaveLength(1);
  });
});
