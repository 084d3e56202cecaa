/**
 * Fan-out topics (`topics.<name>.channels`) without a cluster: what the config accepts, how each
 * channel renders, what an envelope may say of its channels, and how a message whose channels
 * fared differently is settled.
 */
import { describe, expect, it } from "vitest";
import { Renderer } from "../actors/processor/render.js";
import { SubQueueMetrics } from "../actors/subqueue/metrics.js";
import { Meter } from "../runtime/metrics/meter.js";
import { ConfigError, parseConfig, type FanoutTopicConfig, type HeraldConfig } from "../runtime/config/index.js";
import { envelopeProblem, validateSubmission } from "../runtime/pipeline/envelope.js";
import { decideFanout } from "../runtime/pipeline/settle.js";
import type { ChannelOutcome, Envelope } from "../runtime/pipeline/types.js";

const base = () => ({ cluster: "c1", nats: { servers: ["nats://127.0.0.1:4222"] }, nodes: [{ name: "a" }] });
const hook = (url = "https://example.com/h") => ({ channel: "webhook", url });
const mail = { channel: "email", smtp: { host: "mail.example.com" }, from: "noreply@example.com", template: { subject: "Hi {{name}}", text: "Hello {{name}}." } };

function parse(topics: Record<string, unknown>): HeraldConfig {
  return parseConfig({ ...base(), topics }, "/etc/herald");
}

function issues(topics: Record<string, unknown>): { path: string; message: string }[] {
  try {
    parse(topics);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, but the config was accepted");
}

describe("a fan-out topic in the config", () => {
  it("validates each channel as a topic of that channel, with its defaults, and names it by its kind unless named", () => {
    const config = parse({
      orders: {
        channels: [{ ...hook(), name: "shop", template: { title: "{{name}}" } }, mail, { channel: "nats" }],
        concurrency: 8,
        retry: { maxAttempts: 3 },
      },
    });
    expect(config.topics.orders).toEqual({
      channels: [
        { channel: "webhook", name: "shop", url: "https://example.com/h", timeoutMs: 5000, template: { title: "{{name}}" } },
        { ...mail, name: "email", timeoutMs: 10_000, smtp: { host: "mail.example.com", port: 587, secure: false, requireTLS: false, maxConnections: 5 } },
        { channel: "nats", name: "nats" },
      ],
      concurrency: 8,
      retry: { maxAttempts: 3 },
    });
  });

  it("resolves each channel's files against the config's directory", () => {
    const config = parse({ t: { channels: [{ ...mail, smtp: { host: "mail", caFile: "ca.pem" } }, hook()] } });
    expect((config.topics.t as FanoutTopicConfig).channels[0]).toMatchObject({ smtp: { caFile: "/etc/herald/ca.pem" } });
  });

  it("reports a channel's own problems at its place in the list", () => {
    expect(issues({ t: { channels: [{ channel: "webhook" }, { ...mail, template: { subject: "s" } }, { channel: "smtp" }] } })).toEqual([
      { path: "topics.t.channels[0].url", message: "required: must be an http:// or https:// URL" },
      { path: "topics.t.channels[1].template.text", message: 'an email topic\'s template must render "text" (and may render "html")' },
      { path: "topics.t.channels[2].channel", message: 'must be one of "nats", "webhook", "email", "webpush", "apns", "fcm", "sse" (got "smtp")' },
    ]);
  });

  it("wants names unique within the topic, saying how when two channels of a kind share the default", () => {
    expect(issues({ t: { channels: [hook("https://a.example.com/"), hook("https://b.example.com/")] } })).toEqual([
      { path: "topics.t.channels[1].name", message: 'duplicate channel name "webhook" (also channels[0]): a channel is named by its kind unless it has a "name"; give each webhook channel of the topic its own' },
    ]);
    expect(issues({ t: { channels: [{ ...hook(), name: "x" }, { channel: "nats", name: "x" }] } })).toEqual([
      { path: "topics.t.channels[1].name", message: 'duplicate channel name "x" (also channels[0])' },
    ]);
    expect(issues({ t: { channels: [{ ...hook(), name: "not ok" }, { channel: "nats", name: "n".repeat(65) }] } })).toEqual([
      { path: "topics.t.channels[0].name", message: 'must be 1–64 letters, digits, "_" or "-" (got "not ok")' },
      { path: "topics.t.channels[1].name", message: expect.stringMatching(/^must be 1–64 letters, digits, "_" or "-" \(got "n+"…\)$/) },
    ]);
  });

  it("keeps the topic's own settings out of its channels", () => {
    expect(issues({ t: { channels: [{ ...hook(), concurrency: 2, retry: { maxAttempts: 1 } }] } })).toEqual([
      { path: "topics.t.channels[0].concurrency", message: 'is a setting of the topic, not of one of its channels: put it beside "channels"' },
      { path: "topics.t.channels[0].retry", message: 'is a setting of the topic, not of one of its channels: put it beside "channels"' },
    ]);
  });

  it("bounds the list, allows one sse channel, and refuses channel beside channels", () => {
    expect(issues({ t: { channels: [] } })).toEqual([{ path: "topics.t.channels", message: "must not be empty" }]);
    const many = Array.from({ length: 17 }, (_, i) => ({ channel: "nats", name: `n${i}` }));
    expect(issues({ t: { channels: many } })).toEqual([{ path: "topics.t.channels", message: "must have at most 16 entries" }]);
    expect(issues({ t: { channels: [{ channel: "sse" }, { channel: "sse", name: "again" }] } })).toEqual([
      { path: "topics.t.channels[1].channel", message: "a topic has at most one sse channel (also channels[0]): its pushes are kept in the topic's own stream" },
    ]);
    expect(issues({ t: { channel: "webhook", url: "https://example.com/h", channels: [hook()] } })).toEqual([
      { path: "topics.t", message: 'unknown key "channels" (did you mean "channel"?)' },
    ]);
  });

  it("takes retry.abortOn only with a webhook channel", () => {
    expect(parse({ t: { channels: [hook(), { channel: "nats" }], retry: { abortOn: [503] } } }).topics.t!.retry).toEqual({ abortOn: [503] });
    expect(issues({ t: { channels: [{ channel: "nats" }, mail], retry: { abortOn: [503] } } })).toEqual([
      { path: "topics.t.retry.abortOn", message: "applies to webhook channels only (the statuses of the webhook's HTTP answer); this topic has no webhook channel" },
    ]);
  });
});

describe("rendering a fan-out message", () => {
  const topics = parse({
    t: {
      channels: [
        { ...hook(), name: "push", template: { title: "Order {{order}}" } },
        { ...mail, template: { subject: "Order {{order}}", text: "Dear {{name}}, order {{order}} has shipped." } },
        { channel: "nats", name: "audit" },
      ],
    },
  }).topics;
  const renderer = new Renderer(topics);
  const env = (over: Partial<Envelope> = {}): Envelope => ({ id: "m1", topic: "t", data: { order: 7, name: "Ada" }, createdAt: 1, source: "submit", attempts: 1, ...over });

  it("renders every channel with its own template when the envelope names none", () => {
    expect(renderer.render(env())).toEqual({
      ok: true,
      message: {
        id: "m1",
        topic: "t",
        createdAt: 1,
        rendered: {},
        data: { order: 7, name: "Ada" },
        channels: [
          { channel: "push", rendered: { title: "Order 7" } },
          { channel: "email", rendered: { subject: "Order 7", text: "Dear Ada, order 7 has shipped." } },
          { channel: "audit", rendered: {} },
        ],
      },
    });
  });

  it("renders only the channels the envelope names", () => {
    const r = renderer.render(env({ channels: ["email"] }));
    expect(r.ok && r.message.channels).toEqual([{ channel: "email", rendered: { subject: "Order 7", text: "Dear Ada, order 7 has shipped." } }]);
  });

  it("a channel that fails to render, or that the topic no longer has, fails alone", () => {
    const r = renderer.render(env({ data: { order: 7 }, channels: ["push", "email", "gone"] }));
    expect(r).toMatchObject({
      ok: true,
      message: { channels: [{ channel: "push", rendered: { title: "Order 7" } }] },
      failed: [
        { channel: "email", outcome: { outcome: "dead", reason: "render", error: expect.stringMatching(/^topic "t" channel "email" field "text": undefined variable: name/) } },
        { channel: "gone", outcome: { outcome: "dead", reason: "invalid", error: 'topic "t" has no channel named "gone" (topics.t.channels) any more' } },
      ],
    });
  });

  it("reports a channel's template that does not parse with its place in the list", () => {
    const bad = new Renderer(parse({ t: { channels: [{ channel: "nats" }, { ...hook(), template: { title: "{{ oops" } }] } }).topics);
    expect(bad.templateErrors()).toEqual([{ topic: "t", channel: { name: "webhook", index: 1 }, field: "title", error: expect.any(String) }]);
  });
});

describe("an envelope's channels", () => {
  const limits = { maxPayloadBytes: 1000, maxDepth: 8, maxValues: 100, maxKeys: 100, maxStringBytes: 1000 };
  const env = (channels: unknown) => ({ id: "m1", topic: "t", data: {}, createdAt: 1, source: "submit", attempts: 0, channels });

  it("are absent, or 1–16 distinct channel names", () => {
    expect(envelopeProblem({ ...env(undefined), channels: undefined }, "t", limits)).toBeUndefined();
    expect(envelopeProblem(env(["a", "b-2"]), "t", limits)).toBeUndefined();
    expect(envelopeProblem(env([]), "t", limits)).toBe('"channels" must be a list of 1–16 distinct channel names, got array');
    expect(envelopeProblem(env("a"), "t", limits)).toBe('"channels" must be a list of 1–16 distinct channel names, got string "a"');
    expect(envelopeProblem(env(["a", 3]), "t", limits)).toBe('"channels" must be a list of 1–16 distinct channel names, got number 3 in it');
    expect(envelopeProblem(env(["a", "a"]), "t", limits)).toBe('"channels" must be a list of 1–16 distinct channel names: it names one twice');
  });

  it("cannot be submitted: Herald sets them", () => {
    const r = validateSubmission({ topic: "t", data: {}, channels: ["a"] }, { source: "submit", topics: { t: { channel: "nats" } }, limits, now: () => 1, newId: () => "x" });
    expect(r).toEqual({ ok: false, reason: "invalid", error: '"channels" is set by Herald and cannot be submitted' });
  });
});

describe("decideFanout", () => {
  const policy = { backoffMs: [1000, 5000], maxAttempts: 3, abortOn: [501] };
  const env = (attempts: number): Envelope => ({ id: "m1", topic: "t", data: {}, createdAt: 0, source: "submit", attempts });
  const o = (channel: string, outcome: ChannelOutcome["outcome"]): ChannelOutcome => ({ channel, outcome });

  it("every channel delivered: nothing to write", () => {
    expect(decideFanout([o("a", { outcome: "delivered" }), o("b", { outcome: "delivered", nowhere: true })], env(1), policy)).toEqual({
      action: "split",
      delivered: ["a", "b"],
      dead: [],
    });
  });

  it("a mix: the delivered one done, the transient one retried alone, the permanent one a dead letter of its own", () => {
    const s = decideFanout(
      [o("a", { outcome: "delivered" }), o("b", { outcome: "retry", reason: "503" }), o("c", { outcome: "dead", reason: "rejected", error: "400" })],
      env(1),
      policy,
    );
    expect(s).toEqual({
      action: "split",
      delivered: ["a"],
      retry: { channels: ["b"], delayMs: 1000, error: "b: 503" },
      dead: [{ channel: "c", reason: "rejected", error: "400" }],
    });
  });

  it("channels retried together share one entry, due after the longest delay", () => {
    const s = decideFanout([o("a", { outcome: "retry", reason: "429", retryAfterMs: 20_000 }), o("b", { outcome: "retry", reason: "timed out" })], env(2), policy);
    expect(s.retry).toEqual({ channels: ["a", "b"], delayMs: 20_000, error: "a: 429; b: timed out" });
  });

  it("the topic's policy applies to each channel: abortOn, and exhaustion at maxAttempts", () => {
    expect(decideFanout([o("a", { outcome: "retry", reason: "501", status: 501 }), o("b", { outcome: "retry", reason: "502", status: 502 })], env(1), policy)).toEqual({
      action: "split",
      delivered: [],
      retry: { channels: ["b"], delayMs: 1000, error: "b: 502" },
      dead: [{ channel: "a", reason: "rejected", error: "501 (501 is in the topic's retry.abortOn: not retried)" }],
    });
    expect(decideFanout([o("b", { outcome: "retry", reason: "502" })], env(3), policy)).toEqual({
      action: "split",
      delivered: [],
      dead: [{ channel: "b", reason: "exhausted", error: "gave up after 3 attempts; last error: 502" }],
    });
  });
});

describe("what a sub-queue actor counts of a fan-out topic", () => {
  const topics = parse({ f: { channels: [{ ...hook(), name: "a" }, { ...hook(), name: "b" }, { channel: "nats", name: "c" }] }, s: { channel: "nats" } }).topics;
  const env: Envelope = { id: "m1", topic: "f", data: {}, createdAt: 0, source: "submit", attempts: 1 };
  const counts = (meter: Meter, name: string) =>
    Object.fromEntries(meter.snapshot().series.filter((x) => x.name === name).map((x) => [`${x.labels.topic}/${x.labels.channel ?? x.labels.reason}`, x.value]));

  it("has each channel's series from the start, labelled by its name; a single-channel topic's by its kind", () => {
    const meter = new Meter();
    new SubQueueMetrics(meter, topics, () => 1000);
    expect(counts(meter, "herald_messages_delivered_total")).toEqual({ "f/a": 0, "f/b": 0, "f/c": 0, "s/nats": 0 });
    expect(counts(meter, "herald_messages_retried_total")).toEqual({ "f/a": 0, "f/b": 0, "f/c": 0, "s/nats": 0 });
  });

  it("counts a mix channel by channel: a delivery, a retry and a dead letter", () => {
    const meter = new Meter();
    const m = new SubQueueMetrics(meter, topics, () => 1000);
    m.settled(env, { action: "split", delivered: ["a"], retry: { channels: ["b"], delayMs: 1, error: "503" }, dead: [{ channel: "c", reason: "rejected", error: "no" }] });
    m.settled({ ...env, topic: "s" }, { action: "ack" });
    expect(counts(meter, "herald_messages_delivered_total")).toEqual({ "f/a": 1, "f/b": 0, "f/c": 0, "s/nats": 1 });
    expect(counts(meter, "herald_messages_retried_total")).toEqual({ "f/a": 0, "f/b": 1, "f/c": 0, "s/nats": 0 });
    expect(counts(meter, "herald_messages_dead_lettered_total")).toEqual({ "f/rejected": 1 });
    expect(meter.snapshot().series.find((x) => x.name === "herald_stored_to_pushed_seconds" && x.labels.topic === "f")?.value).toBe(1);
  });

  it("a fan-out message settled as a whole counts on each channel it still had to deliver", () => {
    const meter = new Meter();
    const m = new SubQueueMetrics(meter, topics, () => 1000);
    m.settled({ ...env, channels: ["b", "c"] }, { action: "retry", delayMs: 1, error: "no answer from a pusher" });
    expect(counts(meter, "herald_messages_retried_total")).toEqual({ "f/a": 0, "f/b": 1, "f/c": 1, "s/nats": 0 });
  });
});

describe("the README's fan-out example", () => {
  it("parses as written: a webhook named shop and an email channel, with the topic's retry", async () => {
    const { readFile } = await import("node:fs/promises");
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("**Fan-out.**"));
    const block = /```json\n([\s\S]*?)```/.exec(section)![1]!;
    const t = parse(JSON.parse(`{${block}}`)).topics.shipped as FanoutTopicConfig;
    expect(t.channels.map((c) => [c.name, c.channel])).toEqual([["shop", "webhook"], ["email", "email"]]);
    expect(t.retry).toEqual({ backoffMs: [1000, 10_000, 60_000], maxAttempts: 10, abortOn: [501] });
    expect(new Renderer({ shipped: t }).render({ id: "m", topic: "shipped", data: { name: "Ada", order: 42 }, createdAt: 0, source: "submit", attempts: 1 })).toMatchObject({
      ok: true,
      message: { channels: [{ channel: "shop", rendered: { title: "Order 42 shipped" } }, { channel: "email", rendered: { subject: "Your order 42 has shipped" } }] },
    });
  });
});
