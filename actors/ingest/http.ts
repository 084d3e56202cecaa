/**
 * HTTP ingest: `POST /v1/messages` with a JSON body `{ topic, data, to?, id? }` → 202 `{ id }`
 * once the message is durable. `GET /healthz` → 200. A bearer token is required when the config
 * sets `http.token`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { isJsonPayload } from "../../runtime/codec/index.js";
import type { Logger } from "../../runtime/log.js";
import { decodeSubmission, type DataLimits } from "../../runtime/pipeline/envelope.js";
import type { SubmitReply } from "./index.js";

export interface HttpIngestOptions {
  host: string;
  port: number;
  token: string | undefined;
  maxBodyBytes: number;
  limits: DataLimits;
  node: string;
  submit: (input: unknown) => Promise<SubmitReply>;
  log: Logger;
}

export class HttpIngest {
  private readonly server: Server;

  constructor(private readonly opts: HttpIngestOptions) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        opts.log.error("HTTP ingest handler failed", { error: String(err) });
        if (!res.headersSent) send(res, 500, { error: "internal error" });
      });
    });
    this.server.keepAliveTimeout = 65_000;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" && req.method === "GET") return send(res, 200, { ok: true, node: this.opts.node });
    if (path !== "/v1/messages") return send(res, 404, { error: `no such endpoint ${path}: POST /v1/messages` });
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return send(res, 405, { error: "use POST /v1/messages" });
    }
    if (!this.authorized(req)) {
      res.setHeader("www-authenticate", "Bearer");
      return send(res, 401, { error: "missing or wrong bearer token (Authorization: Bearer <http.token>)" });
    }
    const type = req.headers["content-type"] ?? "";
    if (!/^application\/json\b/i.test(type)) {
      return send(res, 415, { error: `content-type must be application/json, got ${type || "none"}` });
    }
    const body = await readBody(req, this.opts.maxBodyBytes);
    if (body === undefined) {
      return send(res, 413, { error: `request body over ${this.opts.maxBodyBytes} bytes (http.maxBodyBytes)` });
    }
    if (!isJsonPayload(body)) return send(res, 400, { error: "the body must be a JSON object: { topic, data, to?, id? }", reason: "invalid" });
    // The same strict decoder as every other path: invalid UTF-8 and budget overruns are refused.
    const decoded = decodeSubmission(body, this.opts.limits);
    if (!decoded.ok) return send(res, 400, { error: decoded.error, reason: "invalid" });
    const reply = await this.opts.submit(decoded.value);
    if (reply.ok) return send(res, 202, { id: reply.id, duplicate: reply.duplicate });
    if (reply.reason === "unavailable") {
      res.setHeader("retry-after", "1");
      return send(res, 503, { error: reply.error, reason: reply.reason });
    }
    const status = reply.reason === "unknown-topic" ? 404 : reply.reason === "too-large" ? 413 : 400;
    return send(res, status, { error: reply.error, reason: reply.reason });
  }

  private authorized(req: IncomingMessage): boolean {
    const token = this.opts.token;
    if (!token) return true;
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

/** The body, or undefined when it exceeds `limit` (the rest is discarded). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
