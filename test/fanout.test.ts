/**
 * Fan-out end to end on a real cluster: topics that push every message to several webhooks (each
 * a loopback server), where each channel is delivered, retried and dead-lettered on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster, allRunning } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";
import { startWebhookServer, type Delivery, type WebhookServer } from "./helpers/webhook.js";

interface Row {
  id: string;
  topic: string;
  channel?: string;
  reason: string;
  error: string;
  attempts: number;
}

/** Each message id's answers at a server, in order of arrival. */
const answers = (h: WebhookServer, id: string): number[] => h.deliveries.filter((d) => d.headers["webhook-id"] === id).map((d) => d.status);
const ids = (ds: Delivery[]) => ds.map((d) => d.headers["webhook-id"] as string);

describe("fan-out on a cluster", () => {
  let cluster: TestCluster;
  const hooks: Record<string, WebhookServer> = {};
  /** Switches the test flips to make a receiver recover. */
  const down = { pairB: true, broken: true };

  beforeAll(async () => {
    hooks.pairA = await startWebhookServer(() => 200);
    hooks.pairB = await startWebhookServer(() => (down.pairB ? 503 : 200));
    hooks.ok = await startWebhookServer(() => 200);
    // Busy for each message's first two requests, then takes it.
    hooks.flaky = await startWebhookServer((_n, json) => (answers(hooks.flaky!, json.id).length < 2 ? 503 : 200));
    hooks.broken = await startWebhookServer(() => (down.broken ? 400 : 200));
    const channel = (name: string, h: WebhookServer, title: string) => ({ name, channel: "webhook", url: h.url, template: { title } });
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      http: true,
      extra: {
        pipeline: { retry: { backoffMs: [200], maxAttempts: 50 } },
        topics: {
          pair: { channels: [channel("a", hooks.pairA, "A {{n}}"), channel("b", hooks.pairB, "B {{n}}")] },
          mix: { channels: [channel("ok", hooks.ok, "ok"), channel("flaky", hooks.flaky, "flaky"), channel("broken", hooks.broken, "broken")] },
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

  const publish = async (topic: string, id: string, n: number): Promise<void> => {
    const r = await cluster.cli(["publish", topic, "--id", id, "--data", JSON.stringify({ n }), "-c", cluster.configFile]);
    expect(r.code, r.stderr).toBe(0);
  };

  const letters = async (): Promise<Row[]> => JSON.parse((await cluster.cli(["dlq", "list", "--json", "-c", cluster.configFile])).stdout || "[]");

  /** Nothing queued or waiting for a retry: every message is settled, so no push is still to come. */
  const settled = () =>
    waitFor(
      async () => {
        const s = await cluster.status();
        return s.queue.pending === 0 && s.exceptions.retrying === 0;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: "every message settled" },
    );

  it("one channel failing 100% then recovering: the healthy one gets each message once, the failing one is retried alone until delivered", async () => {
    const sent = ["p1", "p2", "p3", "p4", "p5"];
    for (const [i, id] of sent.entries()) await publish("pair", id, i);
    // b refuses every request until each message has been tried there three times.
    await waitFor(() => sent.every((id) => answers(hooks.pairB!, id).length >= 3), { timeoutMs: 20_000, what: "three failed attempts of each message at b" });
    expect(hooks.pairB!.deliveries.every((d) => d.status === 503)).toBe(true);
    down.pairB = false;
    await waitFor(() => sent.every((id) => answers(hooks.pairB!, id).includes(200)), { timeoutMs: 20_000, what: "each message delivered at b" });
    await settled();

    expect(ids(hooks.pairA!.deliveries).sort()).toEqual(sent);
    expect(hooks.pairA!.deliveries.map((d) => d.json.title).sort()).toEqual(["A 0", "A 1", "A 2", "A 3", "A 4"]);
    for (const id of sent) {
      const at = answers(hooks.pairB!, id);
      expect(at.slice(0, -1).every((s) => s === 503), `${id} at b: ${at}`).toBe(true);
      expect(at.at(-1)).toBe(200);
    }
    expect(hooks.pairB!.deliveries.filter((d) => d.status === 200).map((d) => d.json.title).sort()).toEqual(["B 0", "B 1", "B 2", "B 3", "B 4"]);
    expect((await letters()).filter((l) => l.topic === "pair")).toEqual([]);
  });

  it("counts pushes and deliveries per channel, labelled with the channel's name", async () => {
    const port = (cluster.config.nodes[0] as { http: { port: number } }).http.port;
    const value = (text: string, series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const text = await waitFor(
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return value(t, 'herald_pushes_total{topic="pair",channel="b",outcome="delivered"}') === 5 ? t : "";
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "b's deliveries in /metrics" },
    );
    expect(value(text, 'herald_pushes_total{topic="pair",channel="a",outcome="delivered"}')).toBe(5);
    expect(value(text, 'herald_pushes_total{topic="pair",channel="a",outcome="retry"}')).toBe(0);
    expect(value(text, 'herald_pushes_total{topic="pair",channel="b",outcome="retry"}')).toBe(hooks.pairB!.deliveries.filter((d) => d.status === 503).length);
    expect(value(text, 'herald_messages_delivered_total{topic="pair",channel="a"}')).toBe(5);
    expect(value(text, 'herald_messages_delivered_total{topic="pair",channel="b"}')).toBe(5);
    expect(value(text, 'herald_messages_retried_total{topic="pair",channel="a"}')).toBe(0);
    expect(value(text, 'herald_messages_retried_total{topic="pair",channel="b"}')).toBeGreaterThanOrEqual(15);
  });

  it("a mix: the healthy channel gets it once, the flaky one is retried until delivered, the broken one becomes a dead letter naming it", async () => {
    await publish("mix", "m1", 1);
    const letter = await waitFor(async () => (await letters()).find((l) => l.id === "m1"), { timeoutMs: 20_000, what: "the broken channel's dead letter" });
    expect(letter).toMatchObject({ topic: "mix", channel: "broken", reason: "rejected", attempts: 1, error: expect.stringContaining("webhook answered 400") });
    await waitFor(() => answers(hooks.flaky!, "m1").includes(200), { timeoutMs: 20_000, what: "m1 delivered at the flaky channel" });
    await settled();

    expect(answers(hooks.ok!, "m1")).toEqual([200]);
    expect(answers(hooks.flaky!, "m1")).toEqual([503, 503, 200]);
    expect(answers(hooks.broken!, "m1")).toEqual([400]);
    expect((await letters()).filter((l) => l.id === "m1")).toHaveLength(1);
    const table = await cluster.cli(["dlq", "list", "--topic", "mix", "-c", cluster.configFile]);
    expect(table.stdout).toMatch(/^ID\s+TOPIC\s+CHANNEL\s+REASON/);
    expect(table.stdout).toMatch(/\nm1\s+mix\s+broken\s+rejected\s+1\s/);
  });

  it("replaying the broken channel's letter delivers to that channel only", async () => {
    down.broken = false;
    const replay = await cluster.cli(["dlq", "replay", "m1", "-c", cluster.configFile]);
    expect(replay.code, replay.stderr).toBe(0);
    await waitFor(() => answers(hooks.broken!, "m1").includes(200), { timeoutMs: 20_000, what: "the replayed letter at the broken channel" });
    await settled();

    expect(answers(hooks.broken!, "m1")).toEqual([400, 200]);
    expect(answers(hooks.ok!, "m1")).toEqual([200]);
    expect(answers(hooks.flaky!, "m1")).toEqual([503, 503, 200]);
    expect(await letters()).toEqual([]);
  });
});
