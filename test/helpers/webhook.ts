/** A real HTTP server on loopback that records webhook deliveries and answers as told. */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, any>;
  status: number;
}

export interface WebhookServer {
  url: string;
  deliveries: Delivery[];
  /** Decides the status of the n-th request (0-based) for a body. */
  respond: (n: number, json: Record<string, any>) => number;
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
      const status = state.respond(deliveries.length, json);
      deliveries.push({ headers: req.headers, body, json, status });
      res.writeHead(status, { "content-type": "text/plain" });
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
