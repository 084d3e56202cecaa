/**
 * The HTTP source: pages through `{ messages, cursor }` answers (page.ts) with GET. A source that
 * is down, slow or answers garbage is a SourceError: the runner retries it with backoff and shows
 * the error in status; nothing is checkpointed past what was queued.
 *
 * What a source answers is not trusted further than the collector needs: redirects are not
 * followed (fetch would send the configured `headers`, API keys among them, to wherever they
 * point), an error body is read only as far as its quote, and a page must be valid UTF-8.
 */
import type { HttpCollectorConfig } from "../../runtime/config/schema.js";
import { messageToItem, parsePage, sameCursor, type HttpCursor } from "./page.js";
import { causeText, SourceError, type Batch, type Source } from "./source.js";

/** Longest error body quoted in an error, in characters. */
const MAX_BODY_SHOWN = 200;
/** Bytes of an error body read for its quote (200 characters are at most 800 UTF-8 bytes); the rest is never read. */
const MAX_ERROR_BODY_READ = 4096;

export class HttpSource implements Source {
  readonly kind = "http" as const;

  constructor(private readonly cfg: HttpCollectorConfig) {}

  async initialCursor(): Promise<null> {
    return null;
  }

  async fetch(cursorValue: unknown, limit: number): Promise<Batch> {
    const sent = asHttpCursor(cursorValue);
    const url = new URL(this.cfg.url);
    if (sent !== null) url.searchParams.set(this.cfg.cursorParam, String(sent));
    if (this.cfg.limitParam !== undefined) url.searchParams.set(this.cfg.limitParam, String(limit));
    // Query strings can carry tokens: errors name the origin and path only.
    const shown = `GET ${url.origin}${url.pathname}`;
    const signal = AbortSignal.timeout(this.cfg.timeoutMs);
    let res: Response;
    try {
      res = await fetch(url, { headers: { accept: "application/json", ...this.cfg.headers }, signal, redirect: "manual" });
    } catch (err) {
      throw new SourceError(`${shown} failed: ${this.reason(err)}`, { cause: err });
    }
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location !== null) {
      await res.body?.cancel().catch(() => undefined);
      throw new SourceError(
        `${shown} answered ${res.status} ${res.statusText}, a redirect to ${shownLocation(location, url)}: redirects are not followed (they would carry the collector's headers elsewhere); set url to the final address`,
      );
    }
    if (!res.ok) {
      const body = (await readStart(res, MAX_ERROR_BODY_READ)).trim();
      const quoted = body ? `: ${body.length > MAX_BODY_SHOWN ? `${body.slice(0, MAX_BODY_SHOWN)}…` : body}` : "";
      throw new SourceError(`${shown} answered ${res.status} ${res.statusText}${quoted}`);
    }
    const text = await this.readBody(res, shown);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new SourceError(`${shown} answered with a body that is not JSON: ${this.reason(err)}`, { cause: err });
    }
    const page = parsePage(json);
    if (!page.ok) throw new SourceError(`${shown} answered with an unexpected page: ${page.error}`);
    const source = `collector:${this.cfg.name}`;
    const opts = this.cfg.topic === undefined ? { source } : { source, topic: this.cfg.topic };
    const items = page.messages.map((m, i) => messageToItem(m, i, sent, opts));
    const cursor = page.cursor ?? sent;
    // An empty page or an unchanged cursor means caught up (an unchanged cursor would loop forever).
    return { items, cursor, more: items.length > 0 && !sameCursor(cursor, sent) };
  }

  async close(): Promise<void> {}

  /**
   * The body as text, at most `maxBodyBytes`: a source that answers more (a runaway page, the wrong
   * endpoint) is refused by its Content-Length or as soon as the streamed body passes the cap,
   * instead of being buffered whole in the collector's thread. Invalid UTF-8 is refused too: a
   * replaced character would reach the pushed message as data nobody sent.
   */
  private async readBody(res: Response, shown: string): Promise<string> {
    const limit = this.cfg.maxBodyBytes;
    const tooBig = () =>
      new SourceError(
        `${shown} answered with a body over maxBodyBytes = ${limit} bytes: have it send smaller pages (limitParam, batchSize) or raise maxBodyBytes`,
      );
    if (Number(res.headers.get("content-length") ?? 0) > limit) {
      await res.body?.cancel().catch(() => undefined);
      throw tooBig();
    }
    if (res.body === null) return "";
    const reader = res.body.getReader();
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const decode = (bytes?: Uint8Array) => {
      try {
        return bytes === undefined ? decoder.decode() : decoder.decode(bytes, { stream: true });
      } catch (err) {
        throw new SourceError(`${shown} answered with invalid UTF-8: a page must be UTF-8 JSON`, { cause: err });
      }
    };
    let size = 0;
    let text = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text + decode();
        size += value.byteLength;
        if (size > limit) throw tooBig();
        text += decode(value);
      }
    } catch (err) {
      if (err instanceof SourceError) {
        await reader.cancel().catch(() => undefined); // the rest is not wanted
        throw err;
      }
      throw new SourceError(`${shown} failed while sending its body: ${this.reason(err)}`, { cause: err });
    }
  }

  private reason(err: unknown): string {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      return `no answer within timeoutMs = ${this.cfg.timeoutMs} ms`;
    }
    return causeText(err);
  }
}

/**
 * At most the first `maxBytes` of a body, decoded leniently (it is only quoted). The stream is
 * cancelled once they are in, so an endless error page costs a chunk, not its length.
 */
async function readStart(res: Response, maxBytes: number): Promise<string> {
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = "";
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      text += decoder.decode(value.subarray(0, maxBytes - size), { stream: true });
      size += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // A body that breaks off still has the start read so far to quote.
    await reader.cancel().catch(() => undefined);
  }
  return text;
}

/** A redirect's target as errors show it: origin and path, never the query string (it can carry tokens). */
function shownLocation(location: string, base: URL): string {
  try {
    const target = new URL(location, base);
    return `${target.origin}${target.pathname}`;
  } catch {
    return "an unparseable Location";
  }
}

function asHttpCursor(value: unknown): HttpCursor {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number") return value;
  throw new SourceError(`the checkpoint holds ${JSON.stringify(value)}, not an HTTP cursor (string or number)`);
}
