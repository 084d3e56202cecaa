/**
 * The dead-letter stream's cap (`pipeline.deadLetters.maxBytes`): status warns as it fills, and
 * once it is full a new dead letter is refused — its message waits in the queue, not dropped —
 * until the letters are purged, when it is dead-lettered after all.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { allRunning, TestCluster } from "./helpers/cluster.js";
import { waitFor } from "./helpers/nats.js";

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});


describe("dead-letter limits", () => {
  it("status warns near the cap; a full stream refuses new letters and their messages wait, then go once purged", async () => {
    cluster = await TestCluster.start({
      nodes: 1,
      actors: { ingest: 1, collector: 0, subqueue: 1, processor: 1, pusher: 1 },
      extra: { topics: { demo: { channel: "nats" } }, pipeline: { deadLetters: { maxBytes: 8192 } } },
    });
    const c = cluster;
    c.startAll();
    await c.waitStatus("the node running", allRunning, 30_000);
    const js = jetstream(c.nc);
    // Invalid input of ~1 KiB each: each letter keeps it (raw), so a few fill the 8 KiB cap.
    const junk = (i: number) => JSON.stringify({ data: { n: i, pad: "x".repeat(900) }, nope: true });
    let sent = 0;
    const warned = await waitFor(
      async () => {
        await js.publish("herald.in.demo", junk(sent++));
        const s = await c.status();
        return s.warnings.length > 0 ? s : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "a dead-letter warning" },
    );
    expect(warned!.warnings[0]!.code).toBe("DEAD_LETTERS_NEAR_LIMIT");
    expect(warned!.warnings[0]!.message).toContain("pipeline.deadLetters.maxBytes");
    expect((await c.cli(["status"])).stdout).toContain("warning: dead letters use");

    // Fill it: the next letters are refused and their messages stay in the queue.
    const full = await waitFor(
      async () => {
        await js.publish("herald.in.demo", junk(sent++));
        const s = await c.status();
        return s.queue.pending > 0 ? s : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "the cap reached and a message waiting in the queue" },
    );
    const waiting = full!.queue.pending;
    // The server refused the letter, and the actor keeps the message to try again: never dropped.
    await waitFor(() => /could not record the outcome; trying again.*maximum bytes/i.test(c.nodeOutput("n1")), {
      timeoutMs: 10_000,
      what: "the refused dead letter reported",
    });
    expect((await c.status()).queue.pending).toBe(waiting);

    expect((await c.cli(["dlq", "purge"])).code).toBe(0);
    const after = await c.waitStatus("the waiting messages dead-lettered after the purge", (s) => s.queue.pending === 0 && s.exceptions.dead === waiting, 20_000);
    expect(after.exceptions.dead).toBe(waiting);
  });
});
