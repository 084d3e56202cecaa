/**
 * How a failed JetStream setup step is judged (runtime/nats/storage.ts): "not now", retried for as
 * long as it lasts, or something a node must not wait out.
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { jetStreamNotNow, saysJetStreamOff } from "../runtime/nats/storage.js";

const apiError = (err_code: number, description: string) => new JetStreamApiError({ code: 503, err_code, description });

describe("jetStreamNotNow", () => {
  it("a timeout and a server whose JetStream is catching up are 'not now'", () => {
    expect(jetStreamNotNow(new errors.TimeoutError())).toBe(true);
    expect(jetStreamNotNow(apiError(10008, "JetStream system temporarily unavailable"))).toBe(true);
  });

  it("JetStream off, a config conflict or any other answer is not", () => {
    expect(jetStreamNotNow(apiError(10039, "jetstream not enabled for account"))).toBe(false);
    expect(jetStreamNotNow(apiError(10058, "stream name already in use with a different configuration"))).toBe(false);
    expect(jetStreamNotNow(new Error("permissions violation for publish to \"$JS.API.STREAM.CREATE.X\""))).toBe(false);
    expect(saysJetStreamOff(apiError(10039, "jetstream not enabled for account"))).toBe(true);
    expect(saysJetStreamOff(apiError(10008, "JetStream system temporarily unavailable"))).toBe(false);
  });
});
