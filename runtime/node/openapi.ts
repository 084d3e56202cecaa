/**
 * The node HTTP API as an OpenAPI 3.1 document (`GET /openapi.json`). Written out here beside the
 * server (runtime/node/http-server.ts); the Rule schema is generated from the zod schema that
 * validates rules, so the two cannot drift. test/node-http.test.ts validates the document and
 * checks that every route is described and that the documented status codes are the ones sent.
 */
import * as z from "zod";
import { heraldVersion } from "../platform/repo.js";
import { rulesSchema } from "../rules/schema.js";

const json = (schema: object, description: string) => ({ description, content: { "application/json": { schema } } });
const text = (description: string) => ({ description, content: { "text/plain": { schema: { type: "string" } } } });
const error = { $ref: "#/components/schemas/Error" };
const bearer = [{ bearer: [] }];

/** The document, with this build's version. */
export function openApiDocument(): object {
  return {
    openapi: "3.1.0",
    info: {
      title: "Herald node HTTP API",
      version: heraldVersion(),
      description:
        "Served by every Herald node on its nodes[].http.port. With http.token set, the /v1 endpoints and /metrics need `Authorization: Bearer <token>`; the probes and this document do not.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "The config's http.token (absent: no token needed)." } },
      schemas: {
        Submission: {
          type: "object",
          required: ["topic"],
          properties: {
            topic: { type: "string", description: "A topic of the cluster config." },
            data: { type: "object", description: "Your fields; the topic's template reads them. Default {}.", additionalProperties: true },
            to: { type: "string", description: "The recipient." },
            id: { type: "string", description: "Your own message id (default: a new ULID); an id already queued is not queued again." },
            deliverAt: {
              description: "Deliver at this time, on the NATS server's clock: ms since the epoch (2000 or later), or an ISO 8601 time with Z or an offset. Not with delayMs; a time past is due at once; at most 366 days ahead.",
              oneOf: [{ type: "integer", minimum: 946684800000 }, { type: "string", format: "date-time" }],
            },
            delayMs: { type: "integer", minimum: 0, maximum: 31622400000, description: "Deliver this many ms after the message is accepted (stored by the server). Not with deliverAt; 0 is at once." },
          },
          additionalProperties: false,
        },
        ScheduledMessage: {
          type: "object",
          properties: {
            id: { type: "string" },
            topic: { type: "string" },
            due: { type: "string", format: "date-time", description: "When it is due, on the NATS server's clock." },
            dueAt: { type: "integer", description: "The same, ms since epoch." },
            to: { type: "string" },
            createdAt: { type: "string", format: "date-time", description: "When it was accepted (the ingesting host's clock)." },
            source: { type: "string" },
            seq: { type: "integer", description: "Its sequence in the HERALD_SCHEDULED stream." },
          },
        },
        Accepted: {
          type: "object",
          required: ["id", "duplicate"],
          properties: { id: { type: "string" }, duplicate: { type: "boolean", description: "true: a message with this id was already queued, and this one was not queued again." } },
        },
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: { type: "string", description: "What was wrong, where, and how to fix it." },
            reason: { type: "string", enum: ["invalid", "unknown-topic", "too-large", "unavailable"] },
          },
        },
        Selection: {
          description: "Which dead letters: these ids, or all (of a topic, of a reason).",
          oneOf: [
            { type: "object", required: ["ids"], properties: { ids: { type: "array", items: { type: "string" }, minItems: 1 } }, additionalProperties: false },
            { type: "object", required: ["all"], properties: { all: { const: true }, topic: { type: "string" }, reason: { type: "string" } }, additionalProperties: false },
          ],
        },
        DeadLetter: {
          type: "object",
          properties: {
            seq: { type: "integer" },
            id: { type: "string" },
            topic: { type: "string" },
            channel: { type: "string", description: "of a fan-out topic's letter: the one channel it is for (a replay delivers only it)" },
            reason: { type: ["string", "null"], enum: ["invalid", "unknown-topic", "render", "rejected", "exhausted", "poison", "too-large", null] },
            error: { type: "string" },
            attempts: { type: ["integer", "null"] },
            deadAt: { type: ["integer", "null"], description: "ms since epoch" },
            bodySeq: { type: ["integer", "null"] },
          },
        },
        ...ruleSchemas(),
        RuleState: {
          type: "object",
          properties: {
            rule: { $ref: "#/components/schemas/Rule" },
            from: { type: "string", enum: ["topic", "default", "config"] },
            paused: { type: ["object", "null"], properties: { scope: { type: "string", enum: ["all", "topic"] }, at: { type: "string" } } },
          },
        },
        Recipient: {
          type: "object",
          properties: {
            id: { type: "string" },
            email: { type: "array", items: { type: "string" }, description: "Plain addresses (no display name, no lists)." },
            webpush: { type: "array", items: { $ref: "#/components/schemas/WebPushSubscription" }, description: "Browsers' Web Push subscriptions." },
            apns: { type: "array", items: { type: "string", pattern: "^[0-9a-fA-F]{32,400}$" }, description: "APNs device tokens (hex)." },
            fcm: { type: "array", items: { type: "string" }, description: "FCM registration tokens." },
            streamTokens: { type: "integer", description: "How many stream tokens the recipient holds (read only)." },
          },
        },
        WebPushSubscription: {
          type: "object",
          description: "PushSubscription.toJSON() of a browser.",
          required: ["endpoint", "keys"],
          properties: {
            endpoint: { type: "string", format: "uri" },
            keys: { type: "object", required: ["p256dh", "auth"], properties: { p256dh: { type: "string" }, auth: { type: "string" } } },
          },
        },
        Status: { type: "object", description: "The cluster status: the same JSON as `herald status --json` (cluster, master, nodes, queue, exceptions, scheduled, collectors, warnings)." },
      },
    },
    paths: {
      "/v1/messages": {
        post: {
          summary: "Submit a message; answered once it is durable",
          security: bearer,
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/Submission" } } } },
          responses: {
            "202": json({ $ref: "#/components/schemas/Accepted" }, "Durably queued (or already queued, duplicate: true)."),
            "400": json(error, "Not a valid submission (reason invalid)."),
            "401": json(error, "Missing or wrong bearer token."),
            "404": json(error, "The topic is not in the cluster config (reason unknown-topic)."),
            "413": json(error, "The body or the message is too large (reason too-large)."),
            "415": json(error, "The content-type is not application/json."),
            "503": json(error, "The queue cannot take it now, or no ingest actor runs on this node (reason unavailable); retry after the Retry-After header's seconds."),
          },
        },
      },
      "/v1/status": {
        get: {
          summary: "The cluster status",
          security: bearer,
          responses: { "200": json({ $ref: "#/components/schemas/Status" }, "The status."), "401": json(error, "Missing or wrong bearer token.") },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics of this node (text format 0.0.4, series prefixed herald_)",
          security: bearer,
          responses: { "200": text("The metrics."), "401": json(error, "Missing or wrong bearer token.") },
        },
      },
      "/livez": { get: { summary: "Liveness: the process and its supervisor work", responses: { "200": text("ok"), "503": text("not live: the reason (the node is stopping).") } } },
      "/healthz": { get: { summary: "Liveness (an alias of /livez)", responses: { "200": text("ok"), "503": text("not live: the reason.") } } },
      "/readyz": {
        get: {
          summary: "Readiness: NATS connected, the heartbeat fresh, every actor running, a master known",
          parameters: [{ name: "verbose", in: "query", required: false, schema: { type: "string" }, description: "Present: one line per check, [+] passed or [-] failed with what was seen." }],
          responses: { "200": text("ok (verbose: the checks)."), "503": text("not ready: the failed checks and why.") },
        },
      },
      "/v1/dead-letters": {
        get: {
          summary: "The dead letters, oldest first (herald dlq list)",
          security: bearer,
          parameters: [
            { name: "topic", in: "query", schema: { type: "string" } },
            { name: "reason", in: "query", schema: { type: "string" } },
            { name: "id", in: "query", schema: { type: "string" }, description: "Letters whose id contains this." },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 10000, default: 100 } },
          ],
          responses: {
            "200": json({ type: "object", properties: { total: { type: "integer" }, letters: { type: "array", items: { $ref: "#/components/schemas/DeadLetter" } } } }, "The letters (at most limit) and how many match."),
            "400": json(error, "A bad limit."),
            "401": json(error, "Missing or wrong bearer token."),
            "503": json(error, "NATS cannot be read now."),
          },
        },
      },
      "/v1/dead-letters/replay": {
        post: {
          summary: "Put dead letters back on the queue, attempts reset (herald dlq replay)",
          security: bearer,
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/Selection" } } } },
          responses: {
            "200": json({ type: "object", properties: { replayed: { type: "array", items: { type: "string" } }, refused: { type: "array", items: { type: "object", properties: { id: { type: "string" }, error: { type: "string" } } } } } }, "What was replayed, and what could not be, with why."),
            "400": json(error, "Not a selection."),
            "401": json(error, "Missing or wrong bearer token."),
            "404": json(error, "An id names no dead letter (nothing was done)."),
            "503": json(error, "NATS cannot take it now."),
          },
        },
      },
      "/v1/dead-letters/purge": {
        post: {
          summary: "Delete dead letters (herald dlq purge)",
          security: bearer,
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/Selection" } } } },
          responses: {
            "200": json({ type: "object", properties: { purged: { type: "integer" } } }, "How many were deleted."),
            "400": json(error, "Not a selection."),
            "401": json(error, "Missing or wrong bearer token."),
            "404": json(error, "An id names no dead letter, or the topic is not configured (nothing was done)."),
            "503": json(error, "NATS cannot take it now."),
          },
        },
      },
      ...Object.fromEntries(
        [
          ["/v1/rules", "the default rule"],
          ["/v1/topics/{topic}/rules", "a topic's rule"],
        ].map(([p, what]) => [
          p,
          {
            ...(p.includes("{topic}") ? { parameters: [{ name: "topic", in: "path", required: true, schema: { type: "string" } }] } : {}),
            get: {
              summary: `The rule in force for ${what}, where it comes from, and any pause (herald rules get)`,
              security: bearer,
              responses: { "200": json({ $ref: "#/components/schemas/RuleState" }, "The rule."), "401": json(error, "Missing or wrong bearer token."), "404": json(error, "No such topic."), "503": json(error, "NATS cannot be read now.") },
            },
            put: {
              summary: `Merge fields over ${what} (null removes one), validated as herald rules set does`,
              security: bearer,
              requestBody: {
                required: true,
                description: "Fields of a Rule to set over the one in force; a field set to null is removed. The merged rule must be a valid Rule.",
                content: { "application/json": { schema: { type: "object" } } },
              },
              responses: {
                "200": json({ type: "object", properties: { rule: { $ref: "#/components/schemas/Rule" } } }, "The rule now stored."),
                "400": json(error, "Invalid: the reason, and \"nothing was changed\"."),
                "401": json(error, "Missing or wrong bearer token."),
                "404": json(error, "No such topic."),
                "409": json(error, "The rule kept changing under the merge: try again."),
                "503": json(error, "NATS cannot take it now."),
              },
            },
          },
        ]),
      ),
      ...Object.fromEntries(
        ["/v1/pause", "/v1/resume", "/v1/topics/{topic}/pause", "/v1/topics/{topic}/resume"].map((p) => [
          p,
          {
            ...(p.includes("{topic}") ? { parameters: [{ name: "topic", in: "path", required: true, schema: { type: "string" } }] } : {}),
            post: {
              summary: `${p.endsWith("pause") ? "Pause" : "Resume"} retrieval of ${p.includes("{topic}") ? "the topic" : "every topic"} (herald ${p.endsWith("pause") ? "pause" : "resume"})`,
              security: bearer,
              responses: {
                "200": json({ type: "object", properties: { paused: { type: "boolean" }, stillPaused: { type: "array", items: { type: "string" } } } }, "Done; after a resume, the pauses that still hold."),
                "401": json(error, "Missing or wrong bearer token."),
                "404": json(error, "No such topic."),
                "503": json(error, "NATS cannot take it now."),
              },
            },
          },
        ]),
      ),
      "/v1/recipients/{id}": {
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,127}$" } }],
        get: {
          summary: "A recipient's addresses (herald recipients get)",
          security: bearer,
          responses: { "200": json({ $ref: "#/components/schemas/Recipient" }, "The recipient."), "401": json(error, "Missing or wrong bearer token."), "404": json(error, "No such recipient."), "503": json(error, "NATS cannot be read now.") },
        },
        put: {
          summary: "Set a recipient's addresses, replacing what it had (herald recipients set)",
          security: bearer,
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/Recipient" } } } },
          responses: { "200": json({ $ref: "#/components/schemas/Recipient" }, "Stored."), "400": json(error, "Not a recipient (the reason)."), "401": json(error, "Missing or wrong bearer token."), "503": json(error, "NATS cannot take it now.") },
        },
        delete: {
          summary: "Remove a recipient (herald recipients rm)",
          security: bearer,
          responses: { "200": json({ type: "object", properties: { removed: { const: true } } }, "Removed."), "401": json(error, "Missing or wrong bearer token."), "404": json(error, "No such recipient."), "503": json(error, "NATS cannot take it now.") },
        },
      },
      "/v1/recipients/{id}/tokens": {
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,127}$" } }],
        post: {
          summary: "Issue the recipient a stream token (herald recipients token): shown once; it reads the recipient's sse streams",
          security: bearer,
          responses: { "200": json({ type: "object", properties: { token: { type: "string" } } }, "The new token."), "400": json(error, "Not a recipient id."), "401": json(error, "Missing or wrong bearer token."), "503": json(error, "NATS cannot take it now.") },
        },
        delete: {
          summary: "Withdraw every stream token of the recipient (herald recipients token --revoke)",
          security: bearer,
          responses: { "200": json({ type: "object", properties: { revoked: { type: "integer" } } }, "How many were withdrawn."), "400": json(error, "Not a recipient id."), "401": json(error, "Missing or wrong bearer token."), "503": json(error, "NATS cannot take it now.") },
        },
      },
      "/v1/scheduled": {
        get: {
          summary: "Scheduled messages not yet delivered, due first (herald scheduled list)",
          security: bearer,
          parameters: [
            { name: "topic", in: "query", schema: { type: "string" } },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 10000, default: 100 } },
          ],
          responses: {
            "200": json({ type: "object", properties: { total: { type: "integer" }, scheduled: { type: "array", items: { $ref: "#/components/schemas/ScheduledMessage" } } } }, "The messages (at most limit) and how many there are."),
            "400": json(error, "A bad limit."),
            "401": json(error, "Missing or wrong bearer token."),
            "404": json(error, "No such topic."),
            "503": json(error, "NATS cannot be read now."),
          },
        },
      },
      "/v1/scheduled/{id}": {
        parameters: [
          { name: "id", in: "path", required: true, schema: { type: "string" } },
          { name: "topic", in: "query", required: false, schema: { type: "string" }, description: "Needed only when the id is scheduled on several topics." },
        ],
        delete: {
          summary: "Cancel a scheduled message (herald scheduled cancel)",
          security: bearer,
          responses: {
            "200": json({ type: "object", properties: { cancelled: { $ref: "#/components/schemas/ScheduledMessage" } } }, "Cancelled: it will not be delivered."),
            "400": json(error, "The id is scheduled on several topics: say which with ?topic=."),
            "401": json(error, "Missing or wrong bearer token."),
            "404": json(error, "No scheduled message with that id (or no such topic)."),
            "409": json(error, "Too late: due within 1 s (on the server's clock), or already delivered."),
            "503": json(error, "NATS cannot be read now."),
          },
        },
      },
      "/v1/subscribe/{topic}": {
        parameters: [
          { name: "topic", in: "path", required: true, schema: { type: "string" }, description: "An sse topic." },
          { name: "to", in: "query", required: true, schema: { type: "string" }, description: "The recipient whose pushes to stream." },
          { name: "access_token", in: "query", required: false, schema: { type: "string" }, description: "The bearer token, or a token issued to the recipient (EventSource cannot send headers)." },
          { name: "lastEventId", in: "query", required: false, schema: { type: "string" }, description: "Resume after this message id (as the Last-Event-ID header does): for a client moving to another node." },
          { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" }, description: "Resume after this message id (EventSource sends it when it reconnects)." },
        ],
        get: {
          summary: "A recipient's pushes of an sse topic as server-sent events (id: the message id, data: the push JSON): what the retention stream holds after Last-Event-ID (all of it on a first connect), then live; a comment line every http.sseHeartbeatMs",
          responses: {
            "200": { description: "An event stream until the client goes.", content: { "text/event-stream": { schema: { type: "string" } } } },
            "400": json(error, "No recipient given, or not a recipient id."),
            "401": json(error, "Missing or wrong token (http.token, or one issued to the recipient)."),
            "404": json(error, "No sse topic of that name."),
            "503": json(error, "This node cannot stream now (NATS, or http.sseMaxClients): try another node."),
          },
        },
      },
      "/v1/events": {
        get: {
          summary: "The console's live feed: server-sent events, an `update` each second (the cluster status, this node's per-topic counts), a `problem` when NATS cannot be read",
          security: bearer,
          responses: { "200": { description: "An event stream until the client goes.", content: { "text/event-stream": { schema: { type: "string" } } } }, "401": json(error, "Missing or wrong bearer token.") },
        },
      },
      "/": {
        get: {
          summary: "The web console (it signs in with the token when one is set)",
          responses: { "200": { description: "The console page.", content: { "text/html": { schema: { type: "string" } } } } },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { "200": json({ type: "object" }, "The OpenAPI 3.1 document.") } } },
    },
  };
}

/**
 * The rules schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), as components: `Rule` and the
 * definitions it refers to (`Rule_<name>`), its `#/$defs/…` references pointed at them.
 */
function ruleSchemas(): Record<string, unknown> {
  const { $schema: _dialect, $defs, ...rule } = z.toJSONSchema(rulesSchema, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>;
  const point = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(point);
    if (typeof v !== "object" || v === null) return v;
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, k === "$ref" && typeof x === "string" ? x.replace(/^#\/\$defs\//, "#/components/schemas/Rule_") : point(x)]),
    );
  };
  const defs = Object.entries(($defs ?? {}) as Record<string, unknown>).map(([name, s]) => [`Rule_${name}`, point(s)]);
  return { Rule: point(rule), ...Object.fromEntries(defs) };
}
