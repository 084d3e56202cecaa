/**
 * Renders an envelope into its push format from the topic's template (output field → Liquid
 * template). Templates are parsed once, at construction, so a bad one is reported at startup.
 *
 * Liquid (LiquidJS) is sandboxed: it interprets templates, never `eval`s them, and caller data is
 * only ever a value in the scope — a `{{` inside `data` is printed, not evaluated. On top of that
 * the engine here is locked down: strict variables and filters (a typo is an error, not an empty
 * string), own properties only (no `constructor`/`__proto__` walks), no file system (`include`,
 * `render` and `layout` tags do not exist), and limits on time, allocations and output size.
 */
import { Buffer } from "node:buffer";
import { Context, Liquid, toValue, toValueSync, type Emitter, type Template } from "liquidjs";
import type { TopicConfig } from "../../runtime/config/index.js";
import { HeraldError } from "../../runtime/errors.js";
import { isFanout } from "../../runtime/config/topics.js";
import type { ChannelOutcome, ChannelPush, Envelope, PushMessage } from "../../runtime/pipeline/types.js";

/** Limits of one field's render. Every field has the defaults unless a test or bench says otherwise. */
export interface RenderLimits {
  /**
   * Largest rendered field, in UTF-8 bytes; a larger one fails the render.
   * @defaultValue 65536 (64 KiB)
   */
  maxFieldBytes?: number;
  /**
   * Time one field may take to render, in milliseconds (LiquidJS `renderLimit`).
   * @defaultValue 250
   */
  maxRenderMs?: number;
  /**
   * Allocation budget of one field's render, in LiquidJS units (array elements / string characters
   * created by ranges, filters like `join`, `reverse`, `json`). Stops `(1..100000000)` loops early.
   * @defaultValue 4194304
   */
  memoryLimit?: number;
  /**
   * Render templates that are only text and `{{ name }}` / `{{ a.b }}` outputs by direct lookup,
   * without LiquidJS, when every value looked up is a string, number or boolean (anything else
   * goes through LiquidJS, which gives the same text or the same error). Off only in tests that
   * compare the two. @defaultValue true
   */
  fastPath?: boolean;
}

/** A template that did not parse: its topic (and channel, of a fan-out topic), output field and LiquidJS's reason. */
export interface TemplateError {
  topic: string;
  /** Of a fan-out topic: the channel whose template it is, and its place in `channels`. */
  channel?: { name: string; index: number };
  field: string;
  error: string;
}

/**
 * A rendered message, or why it cannot be. A fan-out message renders each channel still to
 * deliver on its own: `message.channels` holds those that rendered, `failed` the others.
 */
export type RenderResult =
  | { ok: true; message: PushMessage; failed?: ChannelOutcome[] }
  | { ok: false; reason: "render" | "unknown-topic"; error: string };

/** Tags that read other templates: with no file system they could only fail, so they do not parse. */
const FILE_TAGS = ["include", "render", "layout"];

/**
 * A template that is only text and plain variable outputs: its text pieces and, between them, the
 * property path each output looks up (`{{ a.b }}` → ["a", "b"]).
 */
interface Plain {
  text: string[];
  paths: string[][];
}

type Field = { field: string; template: Template[]; plain?: Plain } | { field: string; error: string };

/** An output tag's inside that is a plain property path (no filters, brackets or whitespace control). */
const PLAIN_PATH = /^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$/;
/** Names LiquidJS reads as literals or as built-in properties (`size`, `first`, `last`), not as keys. */
const NOT_PLAIN_NAMES = new Set(["true", "false", "nil", "null", "empty", "blank", "size", "first", "last"]);

/** The plain form of `source`, or undefined when it uses anything but text and plain outputs. */
export function plainTemplate(source: string): Plain | undefined {
  const text: string[] = [];
  const paths: string[][] = [];
  let at = 0;
  for (;;) {
    const open = source.indexOf("{{", at);
    const piece = source.slice(at, open < 0 ? undefined : open);
    if (piece.includes("{%") || piece.includes("%}")) return undefined;
    text.push(piece);
    if (open < 0) return { text, paths };
    const close = source.indexOf("}}", open + 2);
    if (close < 0) return undefined;
    const path = PLAIN_PATH.exec(source.slice(open + 2, close))?.[1]?.split(".");
    if (!path || path.some((p) => NOT_PLAIN_NAMES.has(p))) return undefined;
    paths.push(path);
    at = close + 2;
  }
}

/** Renders envelopes of the configured topics. Construct once per processor; `render` is sync. */
export class Renderer {
  readonly #liquid: Liquid;
  readonly #topics = new Map<string, Field[]>();
  /** Fan-out topics: each channel's fields, by name, in the order of `channels`. */
  readonly #fanout = new Map<string, Map<string, Field[]>>();
  readonly #maxFieldBytes: number;
  readonly #fastPath: boolean;

  constructor(topics: Record<string, TopicConfig>, limits: RenderLimits = {}) {
    this.#maxFieldBytes = limits.maxFieldBytes ?? 65_536;
    this.#fastPath = limits.fastPath ?? true;
    this.#liquid = new Liquid({
      strictVariables: true,
      strictFilters: true,
      ownPropertyOnly: true,
      // An empty in-memory template map instead of the disk: nothing can be looked up, ever.
      templates: {},
      // Same output on every node, whatever its local time zone.
      timezoneOffset: 0,
      renderLimit: limits.maxRenderMs ?? 250,
      memoryLimit: limits.memoryLimit ?? 4_194_304,
    });
    for (const tag of FILE_TAGS) delete this.#liquid.tags[tag];

    for (const [topic, config] of Object.entries(topics)) {
      if (isFanout(config)) this.#fanout.set(topic, new Map(config.channels.map((c) => [c.name, this.#parse(c.template)])));
      else this.#topics.set(topic, this.#parse(config.template));
    }
  }

  #parse(template: Record<string, string> | undefined): Field[] {
    return Object.entries(template ?? {}).map(([field, source]): Field => {
      try {
        const parsed = this.#liquid.parse(source);
        const plain = this.#fastPath ? plainTemplate(source) : undefined;
        return plain ? { field, template: parsed, plain } : { field, template: parsed };
      } catch (err) {
        return { field, error: errorText(err) };
      }
    });
  }

  /** Templates that failed to parse; empty when every topic can render. Check it at startup. */
  templateErrors(): TemplateError[] {
    const errors: TemplateError[] = [];
    for (const [topic, fields] of this.#topics) {
      for (const f of fields) if ("error" in f) errors.push({ topic, field: f.field, error: f.error });
    }
    for (const [topic, channels] of this.#fanout) {
      [...channels].forEach(([name, fields], index) => {
        for (const f of fields) if ("error" in f) errors.push({ topic, channel: { name, index }, field: f.field, error: f.error });
      });
    }
    return errors;
  }

  /**
   * Renders every output field of the envelope's topic. The scope is the envelope's `data` at top
   * level (`{{ name }}`), the whole `data` as `data`, and the envelope's identity as `message`
   * (`{{ message.id }}`, `.topic`, `.to`, `.createdAt`); `data` and `message` win over data keys of
   * the same name, so a caller cannot forge `message.id`. Every failure is permanent: the same
   * message and template fail the same way on a retry.
   */
  render(envelope: Envelope): RenderResult {
    const fields = this.#topics.get(envelope.topic);
    if (fields === undefined) {
      const channels = this.#fanout.get(envelope.topic);
      if (channels !== undefined) return this.#renderFanout(envelope, channels);
      return { ok: false, reason: "unknown-topic", error: `no template for topic ${JSON.stringify(envelope.topic)}: it is not configured` };
    }
    const rendered = this.#renderFields(fields, scopeOf(envelope), `topic ${JSON.stringify(envelope.topic)}`);
    if (typeof rendered === "string") return { ok: false, reason: "render", error: rendered };
    return { ok: true, message: pushMessage(envelope, rendered) };
  }

  /**
   * Each channel of a fan-out message still to deliver (`envelope.channels`, absent: all), with
   * its own template. A channel that fails to render, or that the topic no longer has, is a dead
   * outcome of its own; the others go on.
   */
  #renderFanout(envelope: Envelope, channels: Map<string, Field[]>): RenderResult {
    const scope = scopeOf(envelope);
    const topic = JSON.stringify(envelope.topic);
    const pushes: ChannelPush[] = [];
    const failed: ChannelOutcome[] = [];
    for (const channel of envelope.channels ?? channels.keys()) {
      const fields = channels.get(channel);
      if (fields === undefined) {
        const error = `topic ${topic} has no channel named ${JSON.stringify(channel)} (topics.${envelope.topic}.channels) any more`;
        failed.push({ channel, outcome: { outcome: "dead", reason: "invalid", error } });
        continue;
      }
      const rendered = this.#renderFields(fields, scope, `topic ${topic} channel ${JSON.stringify(channel)}`);
      if (typeof rendered === "string") failed.push({ channel, outcome: { outcome: "dead", reason: "render", error: rendered } });
      else pushes.push({ channel, rendered });
    }
    const message = { ...pushMessage(envelope, {}), channels: pushes };
    return failed.length === 0 ? { ok: true, message } : { ok: true, message, failed };
  }

  /** Every field rendered, or the error of the first that fails (every failure is permanent). */
  #renderFields(fields: Field[], scope: object, where: string): Record<string, string> | string {
    const rendered: Record<string, string> = {};
    for (const f of fields) {
      const at = `${where} field ${JSON.stringify(f.field)}`;
      if ("error" in f) return `${at}: the template does not parse: ${f.error}`;
      try {
        rendered[f.field] = (f.plain && renderPlain(f.plain, scope, this.#maxFieldBytes)) ?? this.#renderField(f.template, scope);
      } catch (err) {
        return `${at}: ${errorText(err)}`;
      }
    }
    return rendered;
  }

  #renderField(template: Template[], scope: object): string {
    const liquid = this.#liquid;
    const ctx = new Context(scope, liquid.options, { sync: true }, { liquid });
    // LiquidJS buffers output without bound; this emitter stops a runaway loop as soon as it passes the cap.
    const emitter = new CappedEmitter(this.#maxFieldBytes);
    toValueSync(liquid.renderer.renderTemplates(template, ctx, emitter));
    const bytes = Buffer.byteLength(emitter.buffer);
    if (bytes > this.#maxFieldBytes) throw new OutputTooLarge(this.#maxFieldBytes, `${bytes} bytes`);
    return emitter.buffer;
  }
}

/**
 * What templates see: `data` fields at the top level, the whole `data` as `data`, and the
 * envelope's identity as `message`; `data` and `message` win over data keys of the same name.
 */
function scopeOf(envelope: Envelope): object {
  const message = {
    id: envelope.id,
    topic: envelope.topic,
    ...(envelope.to === undefined ? {} : { to: envelope.to }),
    createdAt: envelope.createdAt,
  };
  // Spread (not Object.assign) defines an own "__proto__" key instead of setting the prototype.
  return { ...envelope.data, data: envelope.data, message };
}

function pushMessage(envelope: Envelope, rendered: Record<string, string>): PushMessage {
  return {
    id: envelope.id,
    topic: envelope.topic,
    ...(envelope.to === undefined ? {} : { to: envelope.to }),
    createdAt: envelope.createdAt,
    rendered,
    data: envelope.data,
  };
}

/**
 * `plain` rendered by direct lookup, as LiquidJS would render it (own properties only); undefined
 * when a value is missing or not a string, finite number or boolean, or the output is over the cap:
 * LiquidJS then renders it and says what is wrong.
 */
function renderPlain(plain: Plain, scope: object, maxBytes: number): string | undefined {
  let out = plain.text[0]!;
  for (let i = 0; i < plain.paths.length; i++) {
    let v: unknown = scope;
    for (const key of plain.paths[i]!) {
      if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined;
      v = (v as Record<string, unknown>)[key];
    }
    if (typeof v === "string") out += v;
    else if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") out += String(v);
    else return undefined;
    out += plain.text[i + 1]!;
  }
  return out.length * 3 > maxBytes && Buffer.byteLength(out) > maxBytes ? undefined : out;
}

/** Output buffer that throws once it holds more characters than the byte cap (each is ≥ 1 byte). */
class CappedEmitter implements Emitter {
  buffer = "";
  constructor(private readonly maxBytes: number) {}

  write(html: unknown): void {
    this.buffer += stringify(html);
    if (this.buffer.length > this.maxBytes) throw new OutputTooLarge(this.maxBytes, "more");
  }
}

class OutputTooLarge extends HeraldError {
  constructor(max: number, got: string) {
    super("RENDER_TOO_LARGE", `rendered output is over the limit of ${max} bytes (got ${got})`, { userError: false });
    this.name = "OutputTooLarge";
  }
}

/** LiquidJS's own emitter's conversion (drops valued, nullish → "", arrays joined). */
function stringify(value: unknown): string {
  const v: unknown = toValue(value);
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map(stringify).join("");
  return String(v);
}

/** LiquidJS messages already name the variable and position (`undefined variable: nam, line:1, col:9`). */
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

