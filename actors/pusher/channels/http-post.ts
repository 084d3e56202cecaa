/**
 * One HTTP(S) POST over pooled keep-alive connections: undici's `Pool`, one per origin. Measured
 * here against Node's `http.request` with a keep-alive agent (bench/http-client.ts), it sends 1.8×
 * the signed pushes per second to a loopback receiver, and the webhook channel is all requests.
 * Redirects are never followed.
 */
import { STATUS_CODES } from "node:http";
import { Pool, errors as undiciErrors } from "undici";
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
 * connection dropped, so a huge answer costs one connection, not memory). Times out after
 * `timeoutMs` in all, with a {@link TimeoutError}; a header HTTP cannot carry is an
 * {@link InvalidRequestError}; anything else (refused, reset) is the client's error.
 */
export async function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number, maxBodyBytes: number): Promise<PostResponse> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await poolFor(url.origin).request({
      path: `${url.pathname}${url.search}`,
      method: "POST",
      headers,
      body,
      signal,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      if (size < maxBodyBytes) chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= maxBodyBytes) {
        res.body.destroy();
        break;
      }
    }
    return {
      status: res.statusCode,
      statusText: STATUS_CODES[res.statusCode] ?? "",
      header: (name) => {
        const v = res.headers[name.toLowerCase()];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      text: Buffer.concat(chunks).subarray(0, maxBodyBytes).toString("utf8"),
    };
  } catch (err) {
    if (signal.aborted) throw new TimeoutError(`POST ${url.origin}${url.pathname}`, timeoutMs);
    if (err instanceof undiciErrors.InvalidArgumentError) throw new InvalidRequestError(err.message, { cause: err });
    throw err;
  }
}
