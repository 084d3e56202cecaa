/** A real HTTP server on loopback that records webhook deliveries and answers as told. */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, any>;
  status: number;
  /** When it arrived, on the test's monotonic clock (`performance.now()`, ms). */
  at: number;
}

/** An answer with headers of its own (`webhook-delivery: abort`, `retry-after`). */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
}

export interface WebhookServer {
  url: string;
  deliveries: Delivery[];
  /** Decides the status (and any headers) of the answer to the n-th request (0-based) for a body. */
  respond: (n: number, json: Record<string, any>) => number | Answer;
  close(): Promise<void>;
}

export async function startWebhookServer(respond: WebhookServer["respond"] = () => 200): Promise<WebhookServer> {
  const deliveries: Delivery[] = [];
  const state: WebhookServer = { url: "", deliveries, respond, close: async () => undefined };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let json: Record<string, any> = {};
      try {
        json = JSON.parse(body);
      } catch {
        // recorded as is
      }
      const answer = state.respond(deliveries.length, json);
      const { status, headers = {} } = typeof answer === "number" ? { status: answer } : answer;
      deliveries.push({ headers: req.headers, body, json, status, at: performance.now() });
      res.writeHead(status, { "content-type": "text/plain", ...headers });
      res.end(status >= 400 ? `refused with ${status}` : "ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  state.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return state;
}
