/**
 * A node's HTTP port (`nodes[].http.port`), served by its supervisor:
 *
 *   POST /v1/messages   submit a message: 202 `{ id, duplicate }` once durable (the node's ingest
 *                       actor validates and queues it, as on herald.submit)
 *   GET  /v1/status     the cluster status, the JSON of `herald status --json`
 *   GET  /metrics       Prometheus text, every series prefixed `herald_`
 *   GET  /livez         200 while the process and its supervisor work
 *   GET  /readyz        200 when ready to work, else 503 with the reasons; `?verbose` lists each check
 *   GET  /openapi.json  this API as an OpenAPI 3.1 document
 *
 * With `http.token` set, /v1/* and /metrics need `Authorization: Bearer <token>`; the probes and
 * the API document do not (load balancers and process managers probe without credentials).
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import FindMyWay from "find-my-way";
import { isJsonPayload } from "../codec/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import type { SubmitReply } from "../pipeline/work.js";
import { openApiDocument } from "./openapi.js";


/** One readiness check: its name, whether it passes, and what was seen. */
export interface ReadyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** What the server asks of its node. */
export interface NodeHttpApp {
  node: string;
  /** Queues a submission's body through a running ingest actor of this node. */
  submit(body: Uint8Array): Promise<SubmitReply>;
  status(): Promise<unknown>;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Undefined while alive; the reason once the supervisor is stopping or stopped. */
  notLive(): string | undefined;
  readiness(): ReadyCheck[];
}

export interface NodeHttpOptions {
  host: string;
  port: number;
  token: string | undefined;
  maxBodyBytes: number;
  app: NodeHttpApp;
  log: Logger;
}

type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => Promise<void> | void;

export class NodeHttpServer {
  readonly #server: Server;
  readonly #router = FindMyWay({ ignoreTrailingSlash: true });
  readonly #opts: NodeHttpOptions;

  constructor(opts: NodeHttpOptions) {
    this.#opts = opts;
    const { app } = opts;
    const open = (method: "GET" | "POST", path: string, h: Handler) =>
      this.#router.on(method, path, (req, res) => h(req, res, new URLSearchParams((req.url ?? "").split("?")[1] ?? "")));
    const guarded = (method: "GET" | "POST", path: string, h: Handler) =>
      open(method, path, (req, res, query) => {
        if (this.#authorized(req)) return h(req, res, query);
        res.setHeader("www-authenticate", "Bearer");
        sendJson(res, 401, { error: "missing or wrong bearer token (Authorization: Bearer <http.token>)" });
      });
    guarded("POST", "/v1/messages", (req, res) => this.#submit(req, res));
    guarded("GET", "/v1/status", async (_req, res) => {
      let status: unknown;
      try {
        status = await app.status();
      } catch (err) {
        res.setHeader("retry-after", "1");
        return sendJson(res, 503, { error: `cannot read the cluster status now: ${errorText(err)}` });
      }
      sendJson(res, 200, status);
    });
    guarded("GET", "/metrics", async (_req, res) => {
      const m = await app.metrics();
      sendText(res, 200, m.text, m.contentType);
    });
    const live: Handler = (_req, res) => {
      const why = app.notLive();
      if (why === undefined) sendText(res, 200, "ok\n");
      else sendText(res, 503, `not live: ${why}\n`);
    };
    open("GET", "/livez", live);
    open("GET", "/healthz", live);
    open("GET", "/readyz", (_req, res, query) => this.#ready(res, query.has("verbose")));
    open("GET", "/openapi.json", (_req, res) => sendJson(res, 200, openApiDocument()));
    this.#server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      const run = async () => {
        // HEAD is answered as GET (Node sends the headers without the body).
        const found = this.#router.find((req.method === "HEAD" ? "GET" : req.method) as "GET", path);
        if (found) return found.handler(req, res, found.params, found.store, found.searchParams);
        const methods = (["GET", "POST"] as const).filter((m) => this.#router.find(m, path));
        if (methods.length > 0) {
          res.setHeader("allow", methods.join(", "));
          return sendJson(res, 405, { error: `${req.method} is not allowed on ${path}: use ${methods.join(" or ")}` });
        }
        sendJson(res, 404, { error: `no such endpoint ${path}: see GET /openapi.json` });
      };
      Promise.resolve()
        .then(run)
        .catch((err) => {
          opts.log.error("HTTP handler failed", { path: req.url, error: errorText(err) });
          if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
          else res.destroy();
        });
    });
    this.#server.keepAliveTimeout = 65_000;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#opts.port, this.#opts.host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
  }

  async #submit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { maxBodyBytes, app } = this.#opts;
    const type = req.headers["content-type"] ?? "";
    if (!/^application\/json\b/i.test(type)) {
      return sendJson(res, 415, { error: `content-type must be application/json, got ${type || "none"}` });
    }
    const body = await readBody(req, maxBodyBytes);
    if (body === undefined) return sendJson(res, 413, { error: `request body over ${maxBodyBytes} bytes (http.maxBodyBytes)`, reason: "too-large" });
    if (!isJsonPayload(body)) return sendJson(res, 400, { error: "the body must be a JSON object: { topic, data, to?, id? }", reason: "invalid" });
    const reply = await app.submit(body);
    if (reply.ok) return sendJson(res, 202, { id: reply.id, duplicate: reply.duplicate });
    if (reply.reason === "unavailable") {
      res.setHeader("retry-after", "1");
      return sendJson(res, 503, { error: reply.error, reason: reply.reason });
    }
    const status = reply.reason === "unknown-topic" ? 404 : reply.reason === "too-large" ? 413 : 400;
    return sendJson(res, status, { error: reply.error, reason: reply.reason });
  }

  #ready(res: ServerResponse, verbose: boolean): void {
    const checks = this.#opts.app.readiness();
    const failed = checks.filter((c) => !c.ok);
    const lines = checks.map((c) => `[${c.ok ? "+" : "-"}]${c.name} ${c.ok ? "ok" : "failed"}: ${c.detail}`);
    if (failed.length === 0) return sendText(res, 200, verbose ? `${lines.join("\n")}\nreadyz check passed\n` : "ok\n");
    const body = verbose ? `${lines.join("\n")}\nreadyz check failed\n` : `not ready: ${failed.map((c) => `${c.name}: ${c.detail}`).join("; ")}\n`;
    sendText(res, 503, body);
  }

  #authorized(req: IncomingMessage): boolean {
    const token = this.#opts.token;
    if (!token) return true;
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

/** The body, or undefined when it exceeds `limit` (the rest is read and discarded). */
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

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body), "application/json");
}

function sendText(res: ServerResponse, status: number, text: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}
