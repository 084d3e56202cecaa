/**
 * The webhook channel's HTTP client, measured: Node's `http.request` with a keep-alive agent (what
 * actors/pusher/channels/http-post.ts uses) against undici's `Pool`, POSTing a push-sized JSON body
 * to a loopback server that answers at once, at the same concurrency, side by side in one run.
 *
 *   npm run build --silent && node dist/bench/http-client.js [--requests 20000] [--concurrency 64] [--rounds 3]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { post } from "../actors/pusher/channels/http-post.js";

const { values } = parseArgs({
  options: { requests: { type: "string", default: "20000" }, concurrency: { type: "string", default: "64" }, rounds: { type: "string", default: "3" } },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);

const body = JSON.stringify({ id: "01JCZ4Y1Y0Q5T7V2W3X4Y5Z6A7", topic: "bench", createdAt: Date.now(), title: "Hello Ada", data: { name: "Ada", n: 42 } });
const headers = { "content-type": "application/json", "webhook-id": "01JCZ4Y1Y0Q5T7V2W3X4Y5Z6A7", "webhook-timestamp": "1733000000", "webhook-signature": "v1,abc" };

async function main(): Promise<void> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "text/plain" }).end("ok"));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
  const pool = new Pool(url.origin, { connections: concurrency, pipelining: 1 });

  const clients: Record<string, () => Promise<number>> = {
    "http.request + keep-alive agent": async () => (await post(url, headers, body, 5000, 64 * 1024)).status,
    "undici Pool": async () => {
      const r = await pool.request({ path: url.pathname, method: "POST", headers, body, headersTimeout: 5000, bodyTimeout: 5000 });
      await r.body.text();
      return r.statusCode;
    },
  };
  const results: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    const names = Object.keys(clients);
    for (const name of round % 2 === 0 ? names : names.reverse()) (results[name] ??= []).push(await run(clients[name]!));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(results["http.request + keep-alive agent"]!);
  console.log(`| client | requests/s (median of ${rounds}) | ÷ http.request | rounds |`);
  console.log("| --- | ---: | ---: | --- |");
  for (const [name, xs] of Object.entries(results)) {
    console.log(`| ${name} | ${Math.round(median(xs)).toLocaleString("en-US")} | ${(median(xs) / base).toFixed(2)}× | ${xs.map((x) => Math.round(x)).join(", ")} |`);
  }
  await pool.close();
  await new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
}

/** Requests per second for `requests` POSTs, `concurrency` at a time. */
async function run(send: () => Promise<number>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) {
        const status = await send();
        if (status !== 200) throw new Error(`status ${status}`);
      }
    }),
  );
  return requests / ((performance.now() - started) / 1000);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
