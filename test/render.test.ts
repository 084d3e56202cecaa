import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { plainTemplate, Renderer, type RenderResult } from "../actors/processor/render.js";
import { seededRandom } from "../runtime/rules/random.js";
import type { TopicConfig } from "../runtime/config/index.js";
import type { Envelope, PushMessage } from "../runtime/pipeline/types.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A topic on the nats channel with this template. */
const topic = (template?: Record<string, string>): TopicConfig => ({ channel: "nats", ...(template ? { template } : {}) });

function envelope(over: Partial<Envelope> = {}): Envelope {
  return { id: "01HZZZZZZZZZZZZZZZZZZZZZZZ", topic: "t", data: {}, createdAt: 1_700_000_000_000, source: "submit", attempts: 0, ...over };
}

function rendered(result: RenderResult): PushMessage {
  if (!result.ok) throw new Error(`expected a render, got: ${result.error}`);
  return result.message;
}

function failed(result: RenderResult): string {
  if (result.ok) throw new Error(`expected a render error, got ${JSON.stringify(result.message.rendered)}`);
  return result.error;
}

/** Renders one template string as field "out" of topic "t". */
function renderOne(template: string, data: Record<string, unknown>, over: Partial<Envelope> = {}): RenderResult {
  const r = new Renderer({ t: topic({ out: template }) });
  expect(r.templateErrors()).toEqual([]);
  return r.render(envelope({ data, ...over }));
}

describe("rendering", () => {
  test("the shipped config's demo topic: Hello {{name}}", () => {
    const config = JSON.parse(readFileSync(path.join(root, "cluster.config.json"), "utf8")) as { topics: Record<string, TopicConfig> };
    const renderer = new Renderer(config.topics);
    expect(renderer.templateErrors()).toEqual([]);
    const message = rendered(renderer.render(envelope({ topic: "demo", to: "u1", data: { name: "Ada" } })));
    expect(message).toEqual({
      id: "01HZZZZZZZZZZZZZZZZZZZZZZZ",
      topic: "demo",
      to: "u1",
      createdAt: 1_700_000_000_000,
      rendered: { title: "Hello Ada", body: "Welcome, Ada." },
      data: { name: "Ada" },
    });
  });

  test("a missing variable is an error naming the topic, the field and the variable", () => {
    const renderer = new Renderer({ t: topic({ title: "Hello {{ name }}", body: "Dear {{ nmae }}" }) });
    const error = failed(renderer.render(envelope({ data: { name: "Ada" } })));
    expect(error).toContain('topic "t" field "body"');
    expect(error).toContain("undefined variable: nmae");
    expect(failed(renderOne("{{ user.email }}", { user: {} }))).toContain("undefined variable: user.email");
  });

  test("filters work; an unknown filter is a template error found at construction", () => {
    expect(rendered(renderOne("{{ name | upcase }}", { name: "Ada" })).rendered.out).toBe("ADA");
    expect(rendered(renderOne('{{ items | join: ", " }} ({{ items | size }})', { items: ["a", "b"] })).rendered.out).toBe("a, b (2)");
    expect(rendered(renderOne("{{ missing | default: 'friend' }}", { missing: null })).rendered.out).toBe("friend");
    expect(rendered(renderOne("{% if vip %}Dear{% else %}Hi{% endif %} {{ name }}", { vip: true, name: "Ada" })).rendered.out).toBe("Dear Ada");
    const renderer = new Renderer({ t: topic({ out: "{{ name | shout }}" }) });
    expect(renderer.templateErrors()).toEqual([{ topic: "t", field: "out", error: expect.stringContaining("undefined filter: shout") }]);
  });

  test("the message's identity is under message; data keys cannot forge it", () => {
    const template = "{{ message.id }} {{ message.topic }} {{ message.to }} {{ message.createdAt }}";
    const data = { message: { id: "forged", topic: "x", to: "y", createdAt: 0 }, data: "forged too" };
    const out = rendered(renderOne(template, data, { to: "u9" })).rendered.out;
    expect(out).toBe("01HZZZZZZZZZZZZZZZZZZZZZZZ t u9 1700000000000");
    // The caller's own keys of those names stay reachable under data.
    expect(rendered(renderOne("{{ data.message.id }} / {{ data.data }}", data)).rendered.out).toBe("forged / forged too");
    // No recipient: message.to is a missing variable like any other.
    expect(failed(renderOne("{{ message.to }}", {}))).toContain("undefined variable: message.to");
  });

  test("a topic without a template renders no fields", () => {
    const message = rendered(new Renderer({ t: topic() }).render(envelope({ data: { a: 1 } })));
    expect(message.rendered).toEqual({});
    expect(message.data).toEqual({ a: 1 });
    expect(message).not.toHaveProperty("to");
  });

  test("an unconfigured topic is refused as unknown-topic", () => {
    const result = new Renderer({ t: topic() }).render(envelope({ topic: "other" }));
    expect(result).toEqual({ ok: false, reason: "unknown-topic", error: 'no template for topic "other": it is not configured' });
  });
});

describe("hostile data and templates", () => {
  test("template syntax inside data is printed, never evaluated", () => {
    const name = "{{ message.id }}{% include 'secrets' %}{% raw %}";
    expect(rendered(renderOne("Hello {{ name }}", { name })).rendered.out).toBe(`Hello ${name}`);
  });

  test("__proto__ and constructor tricks reach nothing", () => {
    const data = JSON.parse('{"__proto__": {"polluted": "yes"}, "name": "Ada"}') as Record<string, unknown>;
    expect(rendered(renderOne("{{ name }}", data)).rendered.out).toBe("Ada");
    expect(failed(renderOne("{{ polluted }}", data))).toContain("undefined variable: polluted");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    for (const template of ["{{ constructor }}", "{{ name.constructor }}", "{{ message.constructor.name }}", "{{ data.toString }}", "{{ name.__proto__ }}"]) {
      expect(failed(renderOne(template, { name: "Ada" })), template).toContain("undefined variable");
    }
  });

  test("include, render and layout tags do not exist: no file system", () => {
    const renderer = new Renderer({
      t: topic({ a: "{% include 'package.json' %}", b: "{% render '/etc/passwd' %}", c: "{% layout 'x' %}body", ok: "fine" }),
    });
    const errors = renderer.templateErrors();
    expect(errors.map((e) => e.field)).toEqual(["a", "b", "c"]);
    for (const e of errors) expect(e.error).toMatch(/tag "(include|render|layout)" not found/);
    // Rendering a topic whose template does not parse fails, naming the field.
    expect(failed(renderer.render(envelope()))).toMatch(/^topic "t" field "a": the template does not parse: tag "include" not found/);
  });

  test("output over 64 KiB fails; bytes are counted, not characters", () => {
    expect(rendered(renderOne("{{ s }}", { s: "x".repeat(65_536) })).rendered.out).toHaveLength(65_536);
    expect(failed(renderOne("{{ s }}{{ s }}", { s: "x".repeat(40_000) }))).toContain("rendered output is over the limit of 65536 bytes");
    expect(failed(renderOne("{% for i in (1..100000) %}x{% endfor %}", {}))).toContain("over the limit of 65536 bytes");
    // 40,000 characters, 80,000 bytes.
    expect(failed(renderOne("{{ s }}", { s: "é".repeat(40_000) }))).toContain("over the limit of 65536 bytes (got 80000 bytes)");
  });

  test("runaway loops are stopped by the allocation and time limits", () => {
    expect(failed(renderOne("{% for i in (1..100000000) %}{% endfor %}", {}))).toContain("memory alloc limit exceeded");
    const slow = new Renderer({ t: topic({ out: "{% for a in (1..2000) %}{% for b in (1..2000) %}{% endfor %}{% endfor %}" }) }, {
      maxRenderMs: 20,
      memoryLimit: 1e9,
    });
    expect(slow.templateErrors()).toEqual([]);
    expect(failed(slow.render(envelope()))).toContain("template render limit exceeded");
  });

  test("templates that do not parse are reported at construction, each with its topic and field", () => {
    const renderer = new Renderer({
      a: topic({ ok: "{{ name }}", open: "Hello {{ name", badIf: "{% if %}x{% endif %}" }),
      b: topic({ unclosed: "{% for x in items %}{{ x }}" }),
      c: topic(),
    });
    const errors = renderer.templateErrors();
    expect(errors.map(({ topic, field }) => `${topic}.${field}`)).toEqual(["a.open", "a.badIf", "b.unclosed"]);
    for (const e of errors) expect(e.error.length).toBeGreaterThan(0);
    expect(errors[0]!.error).toContain("not closed");
    expect(rendered(renderer.render(envelope({ topic: "c" }))).rendered).toEqual({});
  });

  test("one renderer renders many messages independently (assign does not leak between renders)", () => {
    const renderer = new Renderer({ t: topic({ out: "{% assign greeting = 'Hi ' | append: name %}{{ greeting }}" }) });
    const outs = ["Ada", "Bo", "Cy"].map((name) => rendered(renderer.render(envelope({ data: { name } }))).rendered.out);
    expect(outs).toEqual(["Hi Ada", "Hi Bo", "Hi Cy"]);
  });
});

describe("the plain-template fast path", () => {
  test("recognises text with plain outputs only", () => {
    expect(plainTemplate("Hello {{name}}, {{ user.email }}!")).toEqual({ text: ["Hello ", ", ", "!"], paths: [["name"], ["user", "email"]] });
    expect(plainTemplate("no outputs")).toEqual({ text: ["no outputs"], paths: [] });
    for (const source of ["{{ name | upcase }}", "{% if a %}x{% endif %}", "{{- name }}", "{{ a[0] }}", "{{ list.size }}", "{{ true }}", "{{ 'x' }}", "{{ name"]) {
      expect(plainTemplate(source), source).toBeUndefined();
    }
  });

  test("renders exactly what LiquidJS renders, or leaves it to LiquidJS (2,000 random templates and scopes)", () => {
    const random = seededRandom(20261201);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const names = ["name", "user", "data", "message", "n", "flag", "list", "size", "nil", "missing"];
    const values: unknown[] = ["Ada", "", "héllo ✓", "{{ name }}", "a}}b", 0, -0, 1.5, -7, 1e21, true, false, null, [], ["x", 1], {}, { email: "a@b", n: 2 }];
    const pieces = () =>
      pick([
        "Hi ",
        " ",
        "}}",
        "{ {",
        "%}",
        "text",
        `{{ ${pick(names)} }}`,
        `{{${pick(names)}.${pick(["email", "n", "size", "first", "missing"])}}}`,
        `{{ ${pick(names)} | upcase }}`,
        "{{ message.id }}",
        "{{ data.name }}",
      ]);
    for (let i = 0; i < 2000; i++) {
      const source = Array.from({ length: 1 + Math.floor(random() * 4) }, pieces).join("");
      const data: Record<string, unknown> = {};
      for (const name of names) if (random() < 0.6) data[name] = pick(values);
      const topics = { t: topic({ out: source }) };
      const fast = new Renderer(topics);
      const liquid = new Renderer(topics, { fastPath: false });
      if (fast.templateErrors().length > 0) continue;
      expect(fast.render(envelope({ data })), `${source} with ${JSON.stringify(data)}`).toEqual(liquid.render(envelope({ data })));
    }
  });

  test("an output over the field cap is still refused", () => {
    const r = new Renderer({ t: topic({ out: "{{ name }}" }) }, { maxFieldBytes: 4 });
    expect(failed(r.render(envelope({ data: { name: "ééé" } })))).toContain("over the limit of 4 bytes");
  });
});
