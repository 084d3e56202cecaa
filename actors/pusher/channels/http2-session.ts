/**
 * One long-lived HTTP/2 session to an origin, as APNs asks of its providers: every request of the
 * origin shares it, and a session that closes, fails or is sent a GOAWAY is dropped, so the next
 * request opens a new one. Requests in flight on a session that dies fail (the caller retries
 * them); none is sent twice by this module.
 */
import { Buffer } from "node:buffer";
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { TimeoutError } from "../../../runtime/errors.js";

/** An HTTP/2 answer: status, headers, and the first bytes of the body as text. */
export interface Http2Answer {
  status: number;
  header(name: string): string | undefined;
  body: string;
}

/** The session in use, with the error that ended it (to explain the streams it took down). */
interface Live {
  session: ClientHttp2Session;
  error?: Error;
}

export class Http2Origin {
  #live: Live | undefined;
  #opened = 0;

  /**
   * @param origin `https://host[:port]`.
   * @param ca PEM of the CA that signed the origin's certificate; the system's CAs when undefined.
   */
  constructor(
    readonly origin: string,
    private readonly ca?: string,
  ) {}

  /** Sessions opened so far: one while the origin keeps it open. */
  get opened(): number {
    return this.#opened;
  }

  /**
   * Sends one request with `body` and reads at most `maxBodyBytes` of the answer. Rejects with a
   * {@link TimeoutError} after `timeoutMs` (connecting included), or with the session's or the
   * stream's error; never resends.
   */
  request(headers: OutgoingHttpHeaders, body: string, timeoutMs: number, maxBodyBytes: number): Promise<Http2Answer> {
    const what = `${String(headers[":method"] ?? "GET")} ${this.origin}${String(headers[":path"] ?? "/")}`;
    return new Promise<Http2Answer>((resolve, reject) => {
      let live: Live;
      let stream: ReturnType<ClientHttp2Session["request"]>;
      try {
        live = this.#current();
        try {
          stream = live.session.request(headers);
        } catch {
          // Out of stream ids, or going away between the check and the call: a new session once.
          this.#drop(live, true);
          live = this.#current();
          stream = live.session.request(headers);
        }
      } catch (err) {
        reject(err as Error);
        return;
      }
      let settled = false;
      let status = 0;
      let answerHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new TimeoutError(what, timeoutMs));
        stream.close(constants.NGHTTP2_CANCEL);
        this.#suspect(live, timeoutMs);
      }, timeoutMs);
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        answerHeaders = h;
      });
      stream.on("data", (chunk: Buffer) => {
        if (size < maxBodyBytes) chunks.push(chunk);
        size += chunk.length;
      });
      stream.on("end", () => {
        // A session destroyed under the stream ends it cleanly, with no answer.
        if (status === 0) return fail(live.error ?? new Error("the session ended before the answer"));
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          status,
          header: (name) => {
            const v = answerHeaders[name.toLowerCase()];
            return Array.isArray(v) ? v.join(", ") : v === undefined ? undefined : String(v);
          },
          body: Buffer.concat(chunks).subarray(0, maxBodyBytes).toString("utf8"),
        });
      });
      stream.on("error", (err: Error) => fail(live.error ?? err));
      stream.on("close", () => {
        const code = stream.rstCode === undefined ? "" : ` (RST_STREAM ${stream.rstCode})`;
        fail(live.error ?? new Error(`the stream closed before its answer${code}`));
      });
      stream.end(body);
    });
  }

  /** Closes the session once its streams are done. */
  async close(): Promise<void> {
    const live = this.#live;
    this.#live = undefined;
    if (!live || live.session.destroyed) return;
    await new Promise<void>((resolve) => live.session.close(() => resolve()));
  }

  #current(): Live {
    const live = this.#live;
    if (live && !live.session.closed && !live.session.destroyed) return live;
    const session = connect(this.origin, this.ca === undefined ? {} : { ca: this.ca });
    const next: Live = { session };
    this.#opened++;
    session.on("error", (err: Error) => {
      next.error = err;
      this.#drop(next, false);
    });
    // After a GOAWAY the server takes no new streams; the ones it already took still finish.
    session.on("goaway", () => this.#drop(next, false));
    session.on("close", () => this.#drop(next, false));
    this.#live = next;
    return next;
  }

  /** Stops giving out `live`'s session (closing it gracefully if `close`). */
  #drop(live: Live, close: boolean): void {
    if (this.#live === live) this.#live = undefined;
    if (close && !live.session.closed) live.session.close();
  }

  /**
   * A request timed out: if the session never connected, or does not answer a PING within
   * `timeoutMs`, it is dead (a lost network path) and is destroyed, failing its other streams.
   */
  #suspect(live: Live, timeoutMs: number): void {
    const { session } = live;
    if (session.destroyed) return;
    if (session.connecting) {
      live.error = new Error(`connecting to ${this.origin} took over ${timeoutMs} ms`);
      this.#drop(live, false);
      session.destroy();
      return;
    }
    const timer = setTimeout(() => {
      live.error = new Error(`${this.origin} did not answer a PING within ${timeoutMs} ms`);
      this.#drop(live, false);
      session.destroy();
    }, timeoutMs);
    try {
      session.ping((err) => {
        clearTimeout(timer);
        if (err && !session.destroyed) {
          this.#drop(live, false);
          session.destroy();
        }
      });
    } catch {
      clearTimeout(timer);
    }
  }
}
