/**
 * HttpSource.fetch against real loopback servers: what a source answers is trusted no further than
 * the collector needs. A redirect is a source error, so the configured headers never reach its
 * target; an error body is read only as far as its quote; a page must be valid UTF-8.
 * (collector-http.test.ts runs the same source inside a cluster.)
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { HttpSource } from "../actors/collector/http.js";
import { SourceError } from "../actors/collector/source.js";
import type { HttpCollectorConfig } from "../runtime/config/schema.js";
import { waitFor } from "./helpers/nats.js";

interface Served {
  url: string;
  /** Every request the server received, as "METHOD path?query" with its headers. */
  requests: { line: string; headers: IncomingMessage["headers"] }[];
}

/** A server on a free loopback port, closed when the test ends. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const requests: Served["requests"] = [];
  const server = createServer((req, res) => {
    requests.push({ line: `${req.method} ${req.url}`, headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const source = (url: string, over: Partial<HttpCollectorConfig> = {}) =>
  new HttpSource({
    kind: "http",
    name: "feed",
    url,
    intervalMs: 1000,
    batchSize: 10,
    backoffMaxMs: 1000,
    cursorParam: "cursor",
    timeoutMs: 60_000,
    maxBodyBytes: 16 * 1024 * 1024,
    topic: "feed",
    headers: { "x-api-key": "k3y-of-the-feed" },
    ...over,
  });

/** The fetch's rejection (or a failure naming what it resolved with). */
async function failure(fetching: Promise<unknown>): Promise<Error> {
  const settled = await fetching.then(
    (batch) => new Error(`expected a SourceError, got a batch: ${JSON.stringify(batch)}`),
    (err: unknown) => err as Error,
  );
  expect(settled).toBeInstanceOf(SourceError);
  return settled;
}

const PAGE = JSON.stringify({ messages: [{ id: "m1", data: { n: 1 } }], cursor: "1" });

describe("HTTP source: redirects", () => {
  it("a redirect to another origin is a source error naming it; the target is never contacted", async () => {
    const target = await serve((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(PAGE));
    const feed = await serve((_req, res) => res.writeHead(302, { location: `${target.url}/v2/feed?token=s3cr3t-query` }).end());

    const err = await failure(source(`${feed.url}/feed`).fetch(null, 10));
    expect(err.message).toBe(
      `GET ${feed.url}/feed answered 302 Found, a redirect to ${target.url}/v2/feed: redirects are not followed (they would carry the collector's headers elsewhere); set url to the final address`,
    );
    expect(err.message).not.toContain("s3cr3t-query");
    expect(feed.requests).toHaveLength(1);
    expect(target.requests).toEqual([]);
  });

  it("a relative Location is shown resolved against the url, without its query", async () => {
    const feed = await serve((req, res) => {
      if (req.url?.startsWith("/feed")) res.writeHead(301, { location: "/moved?sig=abc" }).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(PAGE);
    });

    const err = await failure(source(`${feed.url}/feed`).fetch("7", 10));
    expect(err.message).toMatch(new RegExp(`answered 301 Moved Permanently, a redirect to ${feed.url}/moved: `));
    expect(err.message).not.toContain("sig=abc");
    expect(feed.requests.map((r) => r.line)).toEqual(["GET /feed?cursor=7"]);
  });
});

describe("HTTP source: error bodies", () => {
  it("quotes the start of a 200 MB error body without reading the rest", async () => {
    const TOTAL = 200 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, "x");
    let sent = 0;
    let ended: "closed by the client early" | "sent whole" | undefined;
    const feed = await serve((_req, res) => {
      res.on("close", () => {
        ended = res.writableFinished ? "sent whole" : "closed by the client early";
      });
      res.writeHead(500, { "content-type": "text/plain" });
      res.write("maintenance window: ");
      // Generated as the client reads it (backpressure): never more than the socket buffers hold ahead.
      const more = () => {
        while (sent < TOTAL && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        if (sent >= TOTAL) res.end();
      };
      more();
    });

    const fetching = failure(source(`${feed.url}/feed`).fetch(null, 10));
    const err = await waitFor(() => fetching, { timeoutMs: 5000, what: "the fetch to fail" });
    expect(err.message).toBe(`GET ${feed.url}/feed answered 500 Internal Server Error: maintenance window: ${"x".repeat(180)}…`);
    expect(await waitFor(() => ended, { timeoutMs: 10_000, what: "the error response to end" })).toBe("closed by the client early");
    // At most what the socket buffers held when the client hung up.
    expect(sent).toBeLessThan(32 * 1024 * 1024);
  });
});

describe("HTTP source: page encoding", () => {
  it("a page with invalid UTF-8 is a source error, not data with U+FFFD in it", async () => {
    const bad = Buffer.concat([Buffer.from('{"messages":[{"id":"m1","data":{"name":"Ad'), Buffer.from([0xff]), Buffer.from('a"}}],"cursor":"1"}')]);
    const feed = await serve((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(bad));

    const err = await failure(source(`${feed.url}/feed`).fetch(null, 10));
    expect(err.message).toBe(`GET ${feed.url}/feed answered with invalid UTF-8: a page must be UTF-8 JSON`);
  });

  it("valid UTF-8 beyond ASCII is read as sent", async () => {
    const feed = await serve((_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ messages: [{ id: "m1", data: { name: "Zoë 🚀" } }], cursor: "1" })),
    );

    const batch = await source(`${feed.url}/feed`).fetch(null, 10);
    expect(batch.items.map((i) => i.submission)).toEqual([{ topic: "feed", data: { name: "Zoë 🚀" } }]);
  });
});
