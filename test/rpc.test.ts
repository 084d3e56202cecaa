/** The data plane's request/reply client against a real nats-server. */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TimeoutError } from "../runtime/errors.js";
import { NoRespondersError, Rpc } from "../runtime/nats/rpc.js";
import { startTestNats } from "./helpers/nats.js";

let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

describe("Rpc", () => {
  it("routes many concurrent replies to their own callers", async () => {
    const sub = nc.subscribe("echo", { queue: "q", callback: (_e, m) => void m.respond(m.data) });
    const rpc = new Rpc(nc);
    const texts = Array.from({ length: 500 }, (_, i) => `m${i}`);
    const replies = await Promise.all(texts.map((t) => rpc.request("echo", new TextEncoder().encode(t), 5000)));
    expect(replies.map((r) => r.string())).toEqual(texts);
    rpc.close();
    sub.unsubscribe();
  });

  it("rejects at once with NoRespondersError when nobody listens", async () => {
    const rpc = new Rpc(nc);
    const t0 = Date.now();
    await expect(rpc.request("nobody.here", new Uint8Array(), 5000)).rejects.toBeInstanceOf(NoRespondersError);
    expect(Date.now() - t0).toBeLessThan(2000);
    rpc.close();
  });

  it("times out when the responder never answers, and ignores its late reply", async () => {
    const held: { respond(d: Uint8Array): boolean }[] = [];
    const sub = nc.subscribe("slow", { callback: (_e, m) => void held.push(m) });
    const rpc = new Rpc(nc);
    const late = rpc.request("slow", new Uint8Array(), 200);
    await expect(late).rejects.toBeInstanceOf(TimeoutError);
    // The text reports the wait that was asked for, not the sweep's granularity.
    await expect(late).rejects.toThrow("the request on slow timed out after 200 ms");
    held[0]!.respond(new TextEncoder().encode("late"));
    await nc.flush();
    // The next call still gets its own reply, not the late one.
    const fast = nc.subscribe("fast", { callback: (_e, m) => void m.respond(new TextEncoder().encode("mine")) });
    expect((await rpc.request("fast", new Uint8Array(), 2000)).string()).toBe("mine");
    rpc.close();
    sub.unsubscribe();
    fast.unsubscribe();
  });
});
