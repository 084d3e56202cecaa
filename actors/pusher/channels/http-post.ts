/**
 * One HTTP(S) POST over pooled keep-alive connections: undici's `Pool`, one per origin. Measured
 * here against Node's `http.request` with a keep-alive agent (bench/http-client.ts), it sends 1.8×
 * the signed pushes per second to a loopback receiver, and the webhook channel is all requests.
 * Redirects are never followed.
 */
import { STATUS_CODES } from "node:http";
import { Pool, errors as undiciErrors, type Dispatcher } from "undici";
import { TimeoutError } from "../../../runtime/errors.js";

/** Connections kept per origin; more concurrent pushes queue for a free one. */
const MAX_CONNECTIONS = 256;

export interface PostResponse {
  status: number;
  statusText: string;
  header(name: string): string | undefined;
  /** The first `maxBodyBytes` of the body, as text. */
  text: string;
}

/** What a caller other than the webhook channel may change about one POST. */
export interface PostOptions {
  /** Send through this dispatcher (a caller's own pool, with its CA) instead of the shared pool of the origin. */
  dispatcher?: Dispatcher;
  /** Keep the body of a 2xx answer too (providers answer with JSON the caller needs). @defaultValue false */
  keepOkBody?: boolean;
}

/** A request that cannot be sent as configured (a header value HTTP cannot carry): permanent. */
export class InvalidRequestError extends Error {
  override readonly name = "InvalidRequestError";
}

const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (!pool) {
    pool = new Pool(origin, { connections: MAX_CONNECTIONS, pipelining: 1, keepAliveTimeout: 60_000 });
    pools.set(origin, pool);
  }
  return pool;
}

/** Closes every pool (the pusher is draining); requests in flight finish first. */
export async function closePools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.close().catch(() => undefined)));
}

/**
 * POSTs `body` and reads at most `maxBodyBytes` of the answer (the rest is discarded and the
 * connection dropped, so a huge answer costs one connection, not memory); a 2xx answer's body is
 * not kept unless `opts.keepOkBody` says so. Times out after `timeoutMs` in all, queueing for a connection included, with a
 * {@link TimeoutError}; a header HTTP cannot carry is an {@link InvalidRequestError}; anything
 * else (refused, reset) is the client's error.
 *
 * On undici's dispatch API rather than `request()`: no body stream and no AbortSignal per push,
 * which in the pusher's profile were most of what its garbage collector had to clear.
 */
export function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number, maxBodyBytes: number, opts: PostOptions = {}): Promise<PostResponse> {
  return new Promise<PostResponse>((resolve, reject) => {
    const handler = new PostHandler(`POST ${url.origin}${url.pathname}`, timeoutMs, maxBodyBytes, opts.keepOkBody ?? false, resolve, reject);
    try {
      (opts.dispatcher ?? poolFor(url.origin)).dispatch({ origin: url.origin, path: `${url.pathname}${url.search}`, method: "POST", headers, body }, handler);
    } catch (err) {
      handler.onResponseError(undefined, err as Error);
    }
  });
}

/** One POST's answer as it arrives: status, headers, and the first bytes of a non-2xx body (or of any, if asked). */
class PostHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private readonly timer: NodeJS.Timeout;
  private settled = false;
  private status = 0;
  private statusMessage = "";
  private headers: Record<string, string | string[] | undefined> = {};
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** The answer was cut at maxBodyBytes: the abort that follows ends it, it is no error. */
  private cut = false;

  constructor(
    private readonly what: string,
    private readonly timeoutMs: number,
    private readonly maxBodyBytes: number,
    private readonly keepOkBody: boolean,
    private readonly resolve: (res: PostResponse) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.timer = setTimeout(() => {
      this.fail(new TimeoutError(this.what, this.timeoutMs));
      this.controller?.abort(new TimeoutError(this.what, this.timeoutMs));
    }, timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Timed out while queued for a connection: never sent.
    if (this.settled) controller.abort(new TimeoutError(this.what, this.timeoutMs));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    this.status = statusCode;
    this.headers = headers;
    this.statusMessage = statusMessage ?? "";
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.keepOkBody && this.status >= 200 && this.status < 300) return;
    if (this.size < this.maxBodyBytes) this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= this.maxBodyBytes) {
      this.cut = true;
      this.done();
      controller.abort(new Error("answer cut at the bytes kept"));
    }
  }

  onResponseEnd(): void {
    this.done();
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.cut) return;
    if (err instanceof undiciErrors.InvalidArgumentError) this.fail(new InvalidRequestError(err.message, { cause: err }));
    else this.fail(err);
  }

  private done(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    const headers = this.headers;
    this.resolve({
      status: this.status,
      statusText: STATUS_CODES[this.status] ?? this.statusMessage,
      header: (name) => {
        const v = headers[name.toLowerCase()];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      text: this.chunks.length === 0 ? "" : Buffer.concat(this.chunks).subarray(0, this.maxBodyBytes).toString("utf8"),
    });
  }

  private fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.reject(err);
  }
}
