/**
 * Reading a bucket while another process creates it must not take nats-server down.
 *
 * nats-server 2.9.10 registers a new stream before its store exists; a STREAM.MSG.GET landing in
 * that window crashes the server (measured: 17 of 30 rounds of this very race with the client's
 * default bind). bindBucket reads by direct get, which the stream answers only once it is ready.
 */
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { bindBucket } from "../runtime/nats/buckets.js";
import { startTestNats, waitFor, type TestNats } from "./helpers/nats.js";

let nats: TestNats | undefined;

afterEach(async () => {
  await nats?.stop();
  nats = undefined;
});

describe("bindBucket", () => {
  it("polling a bucket while it is being created leaves the server up, and reads it once it exists", async () => {
    for (let round = 0; round < 20; round++) {
      nats = await startTestNats();
      let exited = false;
      void nats.server.exited.then(() => (exited = true));
      const creator = await connect({ servers: nats.url });
      const reader = await connect({ servers: nats.url });
      let polling = true;
      let seen: string | undefined;
      // What `herald status` does, as fast as it can: bind (refused while there is no bucket), read.
      const poller = async () => {
        while (polling && !exited) {
          const kv = await bindBucket(reader, "race").catch(() => undefined);
          const got = await Promise.all(Array.from({ length: 16 }, () => kv?.get("k").catch(() => null)));
          seen = got.find((e) => e?.operation === "PUT")?.string() ?? seen;
          await new Promise((r) => setImmediate(r));
        }
      };
      const poll = Promise.all([poller(), poller(), poller(), poller()]);
      try {
        const created = await new Kvm(creator).create("race", { history: 1 });
        await created.put("k", `round ${round}`);
        await waitFor(() => exited || seen === `round ${round}`, { timeoutMs: 15_000, what: `the reader to see round ${round}` });
        expect(exited, `nats-server died in round ${round}`).toBe(false);
      } catch (err) {
        // A crashed server shows first as the creator's request timing out: name the cause.
        if (exited) throw new Error(`nats-server died in round ${round} (bucket read during its creation)`, { cause: err });
        throw err;
      } finally {
        polling = false;
        await creator.close().catch(() => undefined);
        await reader.close().catch(() => undefined);
        await poll;
        await nats.stop();
        nats = undefined;
      }
    }
  });
});
