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
 *   GET  /              the web console (console/), and GET /v1/events, its live feed (SSE)
 *
 * and the operator's API (what `herald dlq`, `rules`, `pause` and `resume` do):
 *
 *   GET  /v1/dead-letters[?topic=&reason=&id=&limit=]        the dead letters, oldest first
 *   POST /v1/dead-letters/replay   { ids } | { all: true, topic?, reason? }
 *   POST /v1/dead-letters/purge    { ids } | { all: true, topic?, reason? }
 *   GET|PUT /v1/rules, /v1/topics/<topic>/rules               the rule in force; PUT merges a patch
 *   POST /v1/pause, /v1/resume, /v1/topics/<topic>/pause|resume
 *   GET|PUT|DELETE /v1/recipients/<id>                          the recipients registry
 *   POST|DELETE /v1/recipients/<id>/tokens                      issue / withdraw stream tokens
 *   GET  /v1/scheduled[?topic=&limit=]                          scheduled messages, due first
 *   DELETE /v1/scheduled/<id>[?topic=]                          cancel one (herald scheduled cancel)
 *
 * and the `sse` channel's streams (runtime/node/sse-hub.ts):
 *
 *   GET  /v1/subscribe/<topic>?to=<recipient>   the recipient's pushes as server-sent events
 *
 * With `http.token` set, /v1/* and /metrics need `Authorization: Bearer <token>`; the probes and
 * the API document do not (load balancers and process managers probe without credentials). A
 * stream also takes the token as `?access_token=` (EventSource cannot send headers), or a token
 * issued to its recipient.
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import FindMyWay from "find-my-way";
import { isJsonPayload } from "../codec/index.js";
import { errorText, HeraldError } from "../errors.js";
import type { Logger } from "../log.js";
import type { SubmitReply } from "../pipeline/work.js";
import { consoleFiles } from "./console-files.js";
import { openApiDocument } from "./openapi.js";
import type { SseHub } from "./sse-hub.js";

/** One readiness check: its name, whether it passes, and what was seen. */
export interface ReadyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** Which dead letters a replay or purge covers: these ids, or all (of a topic, of a reason). */
export type LetterSelection = { ids: string[] } | { all: true; topic?: string; reason?: string };

/** The operator's API (runtime/node/ops.ts). Failures throw HeraldError; its code picks the status. */
export interface AdminApi {
  deadLetters(q: { topic?: string; reason?: string; id?: string; limit: number }): Promise<{ total: number; letters: unknown[] }>;
  replay(sel: LetterSelection): Promise<{ replayed: string[]; refused: { id: string; error: string }[] }>;
  purge(sel: LetterSelection): Promise<{ purged: number }>;
  rules(topic: string | undefined): Promise<{ rule: Record<string, unknown>; from: string; paused: { scope: string; at?: string } | null }>;
  setRules(topic: string | undefined, patch: Record<string, unknown>): Promise<{ rule: Record<string, unknown> }>;
  setPaused(topic: string | undefined, paused: boolean): Promise<{ paused: boolean; stillPaused: string[] }>;
  recipient(id: string): Promise<Record<string, unknown>>;
  setRecipient(id: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  removeRecipient(id: string): Promise<{ removed: true }>;
  issueToken(id: string): Promise<{ token: string }>;
  revokeTokens(id: string): Promise<{ revoked: number }>;
  scheduled(q: { topic?: string; limit: number }): Promise<{ total: number; scheduled: unknown[] }>;
  cancelScheduled(id: string, topic: string | undefined): Promise<{ cancelled: unknown }>;
}

/** Largest JSON body the operator's API reads, bytes. */
const ADMIN_BODY_BYTES = 256 * 1024;
/** Most dead letters one list returns. */
const MAX_LIST = 10_000;

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
  admin: AdminApi;
  /** One update of the console's live feed: the cluster status and this node's per-topic counts. */
  live(): Promise<unknown>;
  /** The `sse` channel's streams. */
  streams: Pick<SseHub, "open">;
}

/** Headers of a server-sent event stream (no-transform and x-accel-buffering: proxies must not buffer it). */
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", connection: "keep-alive", "x-accel-buffering": "no" };

/** The console's live feed sends an update this often, ms. */
const LIVE_EVERY_MS = 1000;

export interface NodeHttpOptions {
  host: string;
  port: number;
  token: string | undefined;
  maxBodyBytes: number;
  /** Origins whose pages may read the streams ("*": any). */
  corsOrigins: readonly string[];
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
    const open = (method: "GET" | "POST" | "PUT" | "DELETE", path: string, h: Handler) =>
      this.#router.on(method, path, (req, res) => h(req, res, new URLSearchParams((req.url ?? "").split("?")[1] ?? "")));
    const guarded = (method: "GET" | "POST" | "PUT" | "DELETE", path: string, h: Handler) =>
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
    this.#routeAdmin(guarded, app.admin);
    guarded("GET", "/v1/events", (req, res) => this.#events(req, res));
    // Its own access check: the operator's token, or one issued to the recipient (sse-hub.ts).
    open("GET", "/v1/subscribe/:topic", (req, res, query) => this.#subscribe(req, res, query));
    for (const [url, file] of consoleFiles()) {
      open("GET", url, (_req, res) => {
        res.writeHead(200, { "content-type": file.type, "content-length": file.body.length, "cache-control": "no-cache" });
        res.end(file.body);
      });
    }
    this.#server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      const run = async () => {
        // HEAD is answered as GET (Node sends the headers without the body).
        const found = this.#router.find((req.method === "HEAD" ? "GET" : req.method) as "GET", path);
        if (found) return found.handler(req, res, found.params, found.store, found.searchParams);
        const methods = (["GET", "POST", "PUT", "DELETE"] as const).filter((m) => this.#router.find(m, path));
        if (methods.length > 0) {
          res.setHeader("allow", methods.join(", "));
          return sendJson(res, 405, { error: `${req.method} is not allowed on ${path}: use ${methods.join(" or ")}` });
        }
        sendJson(res, 404, { error: `no such endpoint ${path}: see GET /openapi.json` });
      };
      Promise.resolve()
        .then(run)
        .catch((err) => {
          // The path only: a query may hold an access token.
          opts.log.error("HTTP handler failed", { path, error: errorText(err) });
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

  #routeAdmin(route: (method: "GET" | "POST" | "PUT" | "DELETE", path: string, h: Handler) => void, admin: AdminApi): void {
    const topicOf = (req: IncomingMessage) => decodeURIComponent(/^\/v1\/topics\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "");
    const run = (h: (req: IncomingMessage, query: URLSearchParams) => Promise<unknown>): Handler => async (req, res, query) => {
      try {
        sendJson(res, 200, await h(req, query));
      } catch (err) {
        sendJson(res, adminStatus(err), { error: errorText(err) });
      }
    };
    route("GET", "/v1/dead-letters", run(async (_req, q) => {
      const limit = q.get("limit") === null ? 100 : Number(q.get("limit"));
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw new HeraldError("USAGE", `limit must be an integer from 1 to ${MAX_LIST}, got "${q.get("limit")}"`);
      return admin.deadLetters({ ...optional("topic", q.get("topic")), ...optional("reason", q.get("reason")), ...optional("id", q.get("id")), limit });
    }));
    route("POST", "/v1/dead-letters/replay", run(async (req) => admin.replay(selection(await readJsonBody(req)))));
    route("POST", "/v1/dead-letters/purge", run(async (req) => admin.purge(selection(await readJsonBody(req)))));
    route("GET", "/v1/rules", run(async () => admin.rules(undefined)));
    route("PUT", "/v1/rules", run(async (req) => admin.setRules(undefined, await readJsonBody(req))));
    route("GET", "/v1/topics/:topic/rules", run(async (req) => admin.rules(topicOf(req))));
    route("PUT", "/v1/topics/:topic/rules", run(async (req) => admin.setRules(topicOf(req), await readJsonBody(req))));
    route("POST", "/v1/pause", run(async () => admin.setPaused(undefined, true)));
    route("POST", "/v1/resume", run(async () => admin.setPaused(undefined, false)));
    route("POST", "/v1/topics/:topic/pause", run(async (req) => admin.setPaused(topicOf(req), true)));
    route("POST", "/v1/topics/:topic/resume", run(async (req) => admin.setPaused(topicOf(req), false)));
    const recipientOf = (req: IncomingMessage) => decodeURIComponent(/^\/v1\/recipients\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "");
    route("GET", "/v1/recipients/:id", run(async (req) => admin.recipient(recipientOf(req))));
    route("PUT", "/v1/recipients/:id", run(async (req) => admin.setRecipient(recipientOf(req), await readJsonBody(req))));
    route("DELETE", "/v1/recipients/:id", run(async (req) => admin.removeRecipient(recipientOf(req))));
    route("POST", "/v1/recipients/:id/tokens", run(async (req) => admin.issueToken(recipientOf(req))));
    route("DELETE", "/v1/recipients/:id/tokens", run(async (req) => admin.revokeTokens(recipientOf(req))));
    route("GET", "/v1/scheduled", run(async (_req, q) => {
      const limit = q.get("limit") === null ? 100 : Number(q.get("limit"));
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw new HeraldError("USAGE", `limit must be an integer from 1 to ${MAX_LIST}, got "${q.get("limit")}"`);
      return admin.scheduled({ ...optional("topic", q.get("topic")), limit });
    }));
    const scheduledOf = (req: IncomingMessage) => decodeURIComponent(/^\/v1\/scheduled\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "");
    route("DELETE", "/v1/scheduled/:id", run(async (req, q) => admin.cancelScheduled(scheduledOf(req), q.get("topic") || undefined)));
  }

  /** Server-sent events: an `update` every second (a `problem` when it cannot be read), until the client goes. */
  #events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write("retry: 2000\n\n");
    let busy = false;
    const send = async () => {
      if (busy) return;
      busy = true;
      try {
        res.write(`event: update\ndata: ${JSON.stringify(await this.#opts.app.live())}\n\n`);
      } catch (err) {
        res.write(`event: problem\ndata: ${JSON.stringify({ error: errorText(err) })}\n\n`);
      } finally {
        busy = false;
      }
    };
    void send();
    const timer = setInterval(() => void send(), LIVE_EVERY_MS);
    req.on("close", () => clearInterval(timer));
  }

  /** A recipient's pushes of an `sse` topic, replayed after Last-Event-ID and then live, until the client goes. */
  async #subscribe(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const origin = req.headers.origin;
    const cors = this.#opts.corsOrigins;
    if (origin !== undefined && (cors.includes("*") || cors.includes(origin))) {
      res.setHeader("access-control-allow-origin", cors.includes("*") ? "*" : origin);
      res.setHeader("vary", "origin");
    }
    const topic = decodeURIComponent(/^\/v1\/subscribe\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "");
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? query.get("access_token") ?? undefined;
    const header = req.headers["last-event-id"];
    const lastEventId = (typeof header === "string" && header !== "" ? header : undefined) ?? query.get("lastEventId") ?? undefined;
    // The stream's headers go with its first event: a refusal before that is a plain JSON answer.
    const sink = {
      write: (text: string) => {
        if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
        return res.write(text);
      },
      buffered: () => res.writableLength,
      end: () => res.end(),
    };
    const operator = this.#opts.token !== undefined && token !== undefined && sameToken(token, this.#opts.token);
    const opened = await this.#opts.app.streams.open({ topic, to: query.get("to"), lastEventId, token, operator }, sink);
    if (!opened.ok) {
      if (opened.status === 401) res.setHeader("www-authenticate", "Bearer");
      if (opened.status === 503) res.setHeader("retry-after", "1");
      return sendJson(res, opened.status, { error: opened.error });
    }
    if (res.destroyed) opened.close();
    req.on("close", () => opened.close());
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
    return sameToken(/^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "", token);
  }
}

/** Compares tokens in constant time. */
function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
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

/** The status of an operator's request that failed: the caller's mistake, a missing thing, or NATS. */
function adminStatus(err: unknown): number {
  if (!(err instanceof HeraldError)) return 500;
  if (err.code === "USAGE" || err.code === "RULES_INVALID") return 400;
  if (err.code === "UNKNOWN_ID" || err.code === "UNKNOWN_TOPIC") return 404;
  if (err.code === "RULES_BUSY" || err.code === "TOO_LATE") return 409;
  return 503;
}

function optional<K extends string>(key: K, v: string | null): Partial<Record<K, string>> {
  return v === null || v === "" ? {} : ({ [key]: v } as Record<K, string>);
}

/** A request body that must be one JSON object; a USAGE error says what is wrong otherwise. */
async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req, ADMIN_BODY_BYTES);
  if (body === undefined) throw new HeraldError("USAGE", `the request body is over ${ADMIN_BODY_BYTES} bytes`);
  const text = body.toString("utf8").trim();
  if (text === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HeraldError("USAGE", `the request body is not JSON: ${errorText(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new HeraldError("USAGE", "the request body must be a JSON object");
  return value as Record<string, unknown>;
}

/** `{ ids: [...] }` or `{ all: true, topic?, reason? }`, checked. */
function selection(body: Record<string, unknown>): LetterSelection {
  const extra = Object.keys(body).filter((k) => !["ids", "all", "topic", "reason"].includes(k));
  if (extra.length > 0) throw new HeraldError("USAGE", `unknown field ${JSON.stringify(extra[0])}: give { "ids": [...] } or { "all": true, "topic"?, "reason"? }`);
  if (body.ids !== undefined) {
    if (body.all !== undefined) throw new HeraldError("USAGE", `give "ids" or "all", not both`);
    if (!Array.isArray(body.ids) || body.ids.length === 0 || !body.ids.every((x) => typeof x === "string")) throw new HeraldError("USAGE", `"ids" must be a non-empty array of dead-letter ids`);
    return { ids: body.ids as string[] };
  }
  if (body.all !== true) throw new HeraldError("USAGE", `give { "ids": [...] } or { "all": true } (optionally with "topic" and "reason")`);
  for (const k of ["topic", "reason"] as const) if (body[k] !== undefined && typeof body[k] !== "string") throw new HeraldError("USAGE", `"${k}" must be a string`);
  return { all: true, ...(typeof body.topic === "string" ? { topic: body.topic } : {}), ...(typeof body.reason === "string" ? { reason: body.reason } : {}) };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body), "application/json");
}

function sendText(res: ServerResponse, status: number, text: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}
