/**
 * The shape of `cluster.config.json`: every key, its default and its bounds. The descriptions here
 * are the documentation: they are written into `cluster.config.schema.json` for editors.
 * Cross-field rules (timeout vs interval, preset master, unique names and ports) are checked here
 * too, so one validation pass reports every problem with its path.
 */
import * as z from "zod";
import { rulesSchema } from "../rules/schema.js";
import { checkCollectorTopics, collectors } from "./collectors.js";
import { checkFanoutAbortOn, checkFanoutChannels } from "./fanout.js";
import { MAX_FANOUT_CHANNELS } from "./topics.js";
import { integer, mustBe } from "./errors.js";
import { always, HEADER_NAME, name, port } from "./fields.js";
import { nats, secret } from "./nats.js";

/** The actor kinds a node runs, in pipeline order. */
export const ACTOR_KINDS = ["ingest", "collector", "subqueue", "processor", "pusher"] as const;
export type ActorKind = (typeof ACTOR_KINDS)[number];


const heartbeat = z
  .strictObject({
    intervalMs: integer(50, 60_000).default(500).describe("Every node writes its registry record this often, in milliseconds."),
    timeoutMs: integer(1)
      .default(2000)
      .describe("A node whose readMark has not advanced for this long (observer's clock, ms) is dead. At least 2 × intervalMs."),
  })
  .superRefine((h, ctx) => {
    if (isInt(h.intervalMs) && isInt(h.timeoutMs) && h.timeoutMs < 2 * h.intervalMs) {
      ctx.addIssue({
        code: "custom",
        path: ["timeoutMs"],
        message: `must be ≥ 2 × heartbeat.intervalMs = ${2 * h.intervalMs} (got ${h.timeoutMs}); one late beat must not count a node dead`,
      });
    }
  }, always)
  .prefault({})
  .describe("Liveness: how often nodes beat and when a silent node counts as dead.");

const master = z
  .strictObject({
    preset: z.string().optional().describe("Node that takes the master lease on first start. Default: the first node."),
  })
  .prefault({})
  .describe("Master duty (a lease that fails over to the next live node).");

const restart = z
  .strictObject({
    initialDelayMs: integer(0, 600_000).default(0).describe("Delay before the first restart of a crashed actor, in milliseconds."),
    maxDelayMs: integer(0, 600_000).default(5000).describe("Cap of the exponential restart delay, in milliseconds."),
    intensity: integer(1, 10_000).default(10).describe("Restarts allowed within periodMs before the actor is reported failed."),
    periodMs: integer(1, 86_400_000).default(60_000).describe("Window the restart intensity is counted over, in milliseconds."),
  })
  .superRefine((r, ctx) => {
    if (isInt(r.initialDelayMs) && isInt(r.maxDelayMs) && r.maxDelayMs < r.initialDelayMs) {
      ctx.addIssue({ code: "custom", path: ["maxDelayMs"], message: `must be ≥ initialDelayMs (${r.initialDelayMs})` });
    }
  }, always)
  .prefault({})
  .describe("Restart policy for crashed actors.");

const supervisor = z
  .strictObject({
    pingIntervalMs: integer(10, 600_000).default(1000).describe("How often the supervisor pings each actor thread, in milliseconds."),
    pingTimeoutMs: integer(10, 600_000).default(2000).describe("An actor that has not answered a ping for this long is restarted, in milliseconds."),
    drainTimeoutMs: integer(0, 600_000)
      .default(10_000)
      .describe("On stop, how long actors may finish in-flight messages before they are terminated, in milliseconds."),
    restart,
  })
  .prefault({})
  .describe("Per-node supervisor of the actor threads.");

const http = z
  .strictObject({
    host: z.string().min(1).default("127.0.0.1").describe("Listen host of the HTTP ingest (each node's port is nodes[].http.port)."),
    token: z.string().min(1).optional().describe("Bearer token required by POST /v1/messages. Absent: no authentication."),
    maxBodyBytes: integer(1, 67_108_864).default(1_048_576).describe("Largest accepted request body, in bytes."),
    sseHeartbeatMs: integer(100, 300_000)
      .default(15_000)
      .describe("A comment line goes down every open /v1/subscribe stream this often, in milliseconds, so proxies keep idle streams open."),
    sseMaxClients: integer(1, 1_000_000).default(10_000).describe("Most /v1/subscribe streams one node serves at once; past it a client gets 503 (and tries another node)."),
    corsOrigins: z
      .array(z.union([z.literal("*"), z.url({ protocol: /^https?$/, error: (issue) => mustBe('an origin such as "https://app.example.com", or "*"', issue.input) })]))
      .default(() => [])
      .describe('Web origins whose pages may read /v1/subscribe streams (Access-Control-Allow-Origin), e.g. ["https://app.example.com"]; "*" for any.'),
  })
  .prefault({})
  .describe("HTTP ingest (POST /v1/messages), served by nodes that set http.port.");

const limits = z
  .strictObject({
    maxPayloadBytes: integer(1, 67_108_864)
      .default(262_144)
      .describe("Largest accepted `data` of a message, as UTF-8 JSON, in bytes. Must leave room in the NATS server's max_payload (checked at start)."),
    maxDepth: integer(1, 1000).default(32).describe("Deepest nesting of a message's `data` (data itself is level 1)."),
    maxValues: integer(1, 10_000_000).default(100_000).describe("Most values (of any kind) in a message's `data`."),
    maxKeys: integer(1, 1_000_000).default(10_000).describe("Most keys in one object of a message's `data`."),
    maxStringBytes: integer(1, 67_108_864).default(262_144).describe("Longest string in a message's `data`, in UTF-8 bytes."),
  })
  .prefault({})
  .describe("What one message may hold, checked on every ingest path before anything else reads it; a refusal names the key it hit.");

const retry = z
  .strictObject({
    backoffMs: z
      .array(integer(0, 86_400_000))
      .min(1)
      .default(() => [1000, 5000, 30_000, 120_000, 600_000])
      .describe("Delay before retry n (ms); the last value repeats for later retries."),
    maxAttempts: integer(1, 1000).default(6).describe("Push attempts before a message becomes a dead letter (reason exhausted)."),
  })
  .prefault({})
  .describe("Exception-queue retries of transient push failures.");

const deadLetters = z
  .strictObject({
    maxAge: integer(0, 31_536_000_000)
      .default(0)
      .describe("Dead letters older than this are deleted, in milliseconds. 0: kept until replayed or purged."),
    maxBytes: integer(0, Number.MAX_SAFE_INTEGER)
      .default(0)
      .describe(
        "Size cap of the dead-letter stream, in bytes. When full, new dead letters are refused (their messages wait in the queue) and status warns from 80%. 0: no cap.",
      ),
  })
  .prefault({})
  .describe("Limits of the dead-letter stream.");

const pipeline = z
  .strictObject({
    maxInFlight: integer(1, 10_000)
      .default(64)
      .describe(
        "Messages of one topic a sub-queue actor has dispatched and not yet seen pushed (each topic has its own budget; topics.<name>.concurrency overrides it). 1 makes a topic's deliveries complete in dispatch order.",
      ),
    maxHeld: integer(1, 100_000)
      .default(1000)
      .describe(
        "Messages a sub-queue actor holds of one topic (received, not yet dispatched) before it stops fetching that topic; a paused topic fills this and no more.",
      ),
    maxDeliveries: integer(2, 1000)
      .default(10)
      .describe(
        "A stored message delivered this many times without being settled (its readers keep dying or it keeps coming back) becomes a dead letter with reason poison.",
      ),
    ackWaitMs: integer(1000, 3_600_000)
      .default(10_000)
      .describe("JetStream AckWait of the queue: held messages are kept alive with working(); a dead holder's messages return after this long."),
    duplicateWindowMs: integer(1000, 86_400_000)
      .default(120_000)
      .describe("Window within which a message id already queued for the same topic is not queued again, in milliseconds."),
    retry,
    deadLetters,
  })
  .prefault({})
  .describe("Queue, dispatch and retry settings of the message pipeline.");

const actors = z
  .strictObject({
    ingest: integer(0, 64)
      .default(1)
      .describe("Ingest actors (herald.submit requests; the first also serves this node's HTTP port)."),
    collector: integer(0, 64).default(1).describe("Collector actors (pull messages from configured sources)."),
    subqueue: integer(0, 64).default(1).describe("Sub-queue actors (cut queues into sub-queues and order retrieval)."),
    processor: integer(0, 64).default(1).describe("Processor actors (render messages from templates)."),
    pusher: integer(0, 64).default(1).describe("Pusher actors (deliver on the topic's channel)."),
  } satisfies Record<ActorKind, z.ZodType>)
  .prefault({})
  .describe("Number of actor threads of each kind on this node.");

const node = z
  .strictObject({
    name: name().describe("Unique node name (used by --node, status and the registry)."),
    actors,
    http: z
      .strictObject({ port: port.describe("HTTP ingest port of this node.") })
      .optional()
      .describe("Serve HTTP ingest on this node."),
  })
  .describe("One node: a supervisor process and its actor threads.");

const nodes = z
  .array(node)
  .min(1)
  .superRefine((list, ctx) => {
    const names = new Map<unknown, number>();
    const ports = new Map<unknown, number>();
    list.forEach((n, i) => {
      if (typeof n !== "object" || n === null) return;
      const first = names.get(n.name);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate node name "${n.name}" (also nodes[${first}])` });
      } else names.set(n.name, i);
      const p = n.http?.port;
      if (p === undefined) return;
      const other = ports.get(p);
      if (other !== undefined) {
        ctx.addIssue({ code: "custom", path: [i, "http", "port"], message: `port ${p} is already used by nodes[${other}]` });
      } else ports.set(p, i);
    });
  }, { when: (payload) => Array.isArray(payload.value) })
  .describe("The nodes of the cluster, in failover order.");

const NATS_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** Fields of the push payload beside the rendered ones (DESIGN.md §3): a rendered field would collide. */
const RESERVED_FIELDS = ["id", "topic", "to", "createdAt", "data"];

const template = z
  .record(z.string().min(1), z.string())
  .superRefine((fields, ctx) => {
    for (const field of Object.keys(fields)) {
      if (RESERVED_FIELDS.includes(field)) {
        ctx.addIssue({ code: "custom", path: [field], message: `"${field}" is reserved: choose another field name` });
      }
    }
  }, always)
  .describe("Output field → template string (`{{name}}` is replaced from the message data).");

/** A cluster-wide rate limit: a token bucket of `burst` tokens refilled at `perSecond`. */
export const rateLimitSchema = z
  .strictObject({
    perSecond: z
      .number({ error: (issue) => mustBe("a number of pushes per second", issue.input) })
      .gt(0, { error: "must be more than 0 pushes per second" })
      .max(1_000_000)
      .describe("Pushes per second, cluster-wide (0.5: one every 2 s)."),
    burst: integer(1, 1_000_000).optional().describe("Pushes allowed at once after a quiet spell. Default: perSecond, rounded up."),
  })
  .describe("A token bucket: burst tokens, refilled at perSecond.");

/** When an endpoint's breaker opens, and for how long. */
export const breakerSchema = z
  .strictObject({
    failureRate: z.number().gt(0).max(1).default(0.5).describe("Share of failed pushes (transient failures) in the window that opens the breaker."),
    minRequests: integer(1, 100_000).default(10).describe("Pushes the window must hold before the rate counts."),
    windowMs: integer(100, 3_600_000).default(30_000).describe("The window failures are counted over, ms (each node counts its own pushes)."),
    openMs: integer(100, 3_600_000).default(10_000).describe("How long an open breaker holds messages before one probe is sent, ms."),
    disableAfterMs: integer(0, 30 * 86_400_000)
      .default(0)
      .describe("An endpoint open this long (openMs per failed probe, added up) is disabled: its messages are held until `herald endpoints enable`. 0: never."),
  })
  .describe("Circuit breaker of the topic's endpoint (the webhook URL, SMTP server, APNs or FCM origin; the topic itself for other channels).");

/** Every topic's in-flight budget and retrieval rules, whatever its channel. */
/** A topic's own retry schedule; each key it leaves out is pipeline.retry's. */
const topicRetryKeys = {
  backoffMs: z
    .array(integer(0, 86_400_000))
    .min(1)
    .optional()
    .describe("Delay before this topic's retry n (ms); the last value repeats. Default: pipeline.retry.backoffMs."),
  maxAttempts: integer(1, 1000)
    .optional()
    .describe("Push attempts of this topic's messages before they become dead letters (reason exhausted). Default: pipeline.retry.maxAttempts."),
};

/** The statuses only an HTTP answer has: a webhook's. */
const abortOn = z
  .array(integer(400, 599))
  .min(1)
  .optional()
  .describe(
    "HTTP statuses of the webhook's answer that make a failure permanent (a dead letter, reason rejected) instead of a retry, e.g. [503]. Only 408, 429 and 5xx change anything: other statuses are permanent already.",
  );

const notWebhook = z
  .never({ error: "applies to webhook channels only (the statuses of the webhook's HTTP answer); this topic's channel is not a webhook" })
  .optional();

const topicRetry = z
  .strictObject({ ...topicRetryKeys, abortOn: notWebhook })
  .describe("This topic's retry schedule, over pipeline.retry (each key left out is the pipeline's).");

const webhookRetry = z
  .strictObject({ ...topicRetryKeys, abortOn })
  .describe("This topic's retry schedule, over pipeline.retry (each key left out is the pipeline's), and the answers that stop retries.");

/** Every topic's in-flight budget, retrieval rules and retry schedule, whatever its channel. */
const pacing = {
  concurrency: integer(1, 10_000)
    .optional()
    .describe(
      "Pushes of this topic a sub-queue actor has in flight at most; its own budget, so a slow endpoint holds only its own slots. Default: pipeline.maxInFlight.",
    ),
  rules: rulesSchema.optional().describe("Retrieval rules of this topic. Default: the top-level rules."),
  rateLimit: rateLimitSchema
    .optional()
    .describe("Pushes per second of this topic across the whole cluster (a token bucket the master keeps); seeds the rules bucket on first start, then `herald ratelimit set` changes it. Absent: no limit."),
  breaker: breakerSchema
    .optional()
    .describe("A circuit breaker on the topic's endpoint: past a failure rate its messages wait (no attempts spent) and a probe is sent every openMs. Absent: none."),
  retry: topicRetry.optional(),
};

const natsTopic = z
  .strictObject({
    channel: z.literal("nats"),
    subject: z
      .string()
      .regex(NATS_SUBJECT, {
        error: (issue) => mustBe("a NATS subject without spaces or wildcards", issue.input),
      })
      .optional()
      .describe("Subject the rendered message is published on. Default: <subjectPrefix>.out.<topic>."),
    jetstream: z
      .boolean()
      .optional()
      .describe(
        "Publish to a JetStream stream that captures the subject and count a push as delivered only once the stream has stored it (its ack); the stream is yours to create. Absent or false: a core NATS publish, delivered once the server took it, even with no subscriber.",
      ),
    template: template.optional(),
    ...pacing,
  })
  .describe("Push on a NATS subject.");

/** Key length of a webhook secret, in bytes, as Standard Webhooks asks (README, Channels). */
const SECRET_BYTES = { min: 24, max: 64 };

const webhookTopic = z
  .strictObject({
    channel: z.literal("webhook"),
    url: z
      .url({ protocol: /^https?$/, error: (issue) => mustBe("an http:// or https:// URL", issue.input) })
      .describe("Endpoint the message is POSTed to."),
    secret: z
      .string()
      .superRefine((secret, ctx) => {
        const problem = webhookSecretProblem(secret);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional()
      .describe(
        `Standard Webhooks signing secret of ${SECRET_BYTES.min}–${SECRET_BYTES.max} bytes: whsec_<base64> (the bytes are the decoded base64), or a raw string (its UTF-8 bytes). Make one with: echo "whsec_$(openssl rand -base64 32)". Absent: unsigned.`,
      ),
    timeoutMs: integer(100, 300_000).default(5000).describe("Request timeout, in milliseconds."),
    headers: z
      .record(z.string().regex(HEADER_NAME, { error: "must be a valid HTTP header name" }), z.string())
      .optional()
      .describe("Extra request headers."),
    template: template.optional(),
    ...pacing,
    retry: webhookRetry.optional(),
  })
  .describe("Push by HTTP POST to a webhook (Standard Webhooks signatures).");

/** What an email topic's template must render: the message's subject and its text body (html optional). */
const EMAIL_FIELDS = ["subject", "text"];

const emailTopic = z
  .strictObject({
    channel: z.literal("email"),
    smtp: z
      .strictObject({
        host: z.string().min(1).describe("SMTP server host."),
        port: port.default(587).describe("SMTP server port (587 for submission with STARTTLS, 465 for implicit TLS, 25)."),
        secure: z.boolean().default(false).describe("TLS from the first byte (port 465). false: plain, upgraded with STARTTLS when the server offers it."),
        requireTLS: z.boolean().default(false).describe("Refuse to send unless the connection is upgraded with STARTTLS."),
        caFile: z.string().min(1).optional().describe("PEM file of the CA that signed the server's certificate (default: the system's CAs)."),
        auth: z
          .strictObject({ user: z.string().min(1).describe("SMTP user."), pass: secret("SMTP password") })
          .optional()
          .describe("SMTP login (AUTH PLAIN/LOGIN)."),
        maxConnections: integer(1, 100).default(5).describe("Pooled connections to the server per pusher."),
      })
      .describe("The SMTP server the topic's mail goes to."),
    from: z.string().min(3).describe('Sender address, e.g. "Herald <noreply@example.com>".'),
    timeoutMs: integer(100, 300_000).default(10_000).describe("How long one message may take the server, in milliseconds."),
    template: template
      .superRefine((fields, ctx) => {
        for (const f of EMAIL_FIELDS) {
          if (!Object.hasOwn(fields, f)) ctx.addIssue({ code: "custom", path: [f], message: `an email topic's template must render "${f}" (and may render "html")` });
        }
      }, always)
      .describe("Output field → template string: subject and text (required) and html (optional)."),
    ...pacing,
  })
  .describe("Push by email over SMTP: each message's `to` is the recipient's address.");

/** A CA file for a provider endpoint: tests and private deployments point elsewhere. */
const caFile = z.string().min(1).optional().describe("PEM file of the CA that signed the endpoint's certificate (default: the system's CAs); for sandboxes and tests.");
const providerTimeout = integer(100, 300_000).default(10_000).describe("How long one request to the provider may take, in milliseconds.");
/** How long a provider keeps a push for an offline device, in seconds (four weeks at most, as Web Push and FCM allow). */
const ttlSec = (dflt: number) => integer(0, 2_419_200).default(dflt);

const webpushTopic = z
  .strictObject({
    channel: z.literal("webpush"),
    vapid: z
      .strictObject({
        subject: z
          .string()
          .regex(/^(mailto:[^\s]+|https:\/\/[^\s]+)$/, { error: (issue) => mustBe("a mailto: or https: URL the push service can reach you at", issue.input) })
          .describe("Contact for the push service (RFC 8292 sub claim): mailto:ops@example.com or an https: URL."),
        publicKey: z
          .string()
          .regex(/^[A-Za-z0-9_-]{87}$/, { error: "must be the base64url of a 65-byte P-256 public key (npx web-push generate-vapid-keys)" })
          .describe("VAPID public key, base64url (the applicationServerKey browsers subscribe with)."),
        privateKey: secret("VAPID private key (base64url of 32 bytes)"),
      })
      .describe("The application server's VAPID key pair (RFC 8292); make one with npx web-push generate-vapid-keys."),
    ttlSec: ttlSec(86_400).describe("How long the push service keeps a push for an offline browser, in seconds (TTL header). A template field \"ttl\" overrides it per message."),
    urgency: z
      .enum(["very-low", "low", "normal", "high"])
      .default("normal")
      .describe("Urgency header (RFC 8030). A template field \"urgency\" overrides it per message."),
    caFile,
    timeoutMs: providerTimeout,
    template: template.optional(),
    ...pacing,
  })
  .describe("Push to browsers by Web Push (RFC 8030, VAPID, RFC 8291 encryption): `to` is a recipient with webpush subscriptions, or webpush:<subscription JSON>.");

const apnsTopic = z
  .strictObject({
    channel: z.literal("apns"),
    endpoint: z
      .url({ protocol: /^https$/, error: (issue) => mustBe("an https:// URL", issue.input) })
      .default("https://api.push.apple.com")
      .describe("APNs origin: https://api.push.apple.com (production) or https://api.sandbox.push.apple.com (development builds)."),
    teamId: z.string().regex(/^[A-Z0-9]{10}$/, { error: "must be your 10-character Apple team ID" }).describe("Apple Developer team ID (the JWT's iss)."),
    keyId: z.string().regex(/^[A-Z0-9]{10}$/, { error: "must be the 10-character key ID of the .p8 key" }).describe("Key ID of the token-signing key (the JWT's kid)."),
    keyFile: z.string().min(1).describe("The .p8 file (PKCS#8 PEM, P-256) Apple issued for token-based auth."),
    bundleId: z.string().min(1).describe("The app's bundle ID (apns-topic header)."),
    pushType: z
      .enum(["alert", "background", "voip", "complication", "fileprovider", "mdm", "location", "liveactivity"])
      .default("alert")
      .describe("apns-push-type header."),
    priority: z.union([z.literal(10), z.literal(5), z.literal(1)]).optional().describe("apns-priority: 10 at once, 5 power-considerate, 1 lowest. Default: APNs's (10; background pushes must say 5)."),
    ttlSec: ttlSec(86_400).describe("How long APNs keeps the push for an offline device, in seconds (apns-expiration; 0: deliver now or never)."),
    caFile,
    timeoutMs: providerTimeout,
    template: template.optional(),
    ...pacing,
  })
  .describe("Push to Apple devices by APNs (HTTP/2, token-based auth): `to` is a recipient with apns tokens, or apns:<device token>.");

const fcmTopic = z
  .strictObject({
    channel: z.literal("fcm"),
    projectId: z.string().regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, { error: "must be the Firebase project ID" }).describe("Firebase project ID (the messages:send path)."),
    serviceAccountFile: z
      .string()
      .min(1)
      .describe("The service account's JSON key file (client_email, private_key, token_uri), from the Google Cloud console."),
    endpoint: z
      .url({ protocol: /^https$/, error: (issue) => mustBe("an https:// URL", issue.input) })
      .default("https://fcm.googleapis.com")
      .describe("FCM HTTP v1 API origin."),
    ttlSec: ttlSec(86_400).describe("android.ttl: how long FCM keeps the push for an offline device, in seconds."),
    priority: z.enum(["normal", "high"]).default("normal").describe("android.priority."),
    caFile,
    timeoutMs: providerTimeout,
    template: template.optional(),
    ...pacing,
  })
  .describe("Push to Android, iOS and web apps by Firebase Cloud Messaging (HTTP v1, OAuth2 service account): `to` is a recipient with fcm tokens, or fcm:<registration token>.");

const sseTopic = z
  .strictObject({
    channel: z.literal("sse"),
    retainMs: integer(1000, 30 * 86_400_000)
      .default(86_400_000)
      .describe("How long pushes are kept for clients to catch up (Last-Event-ID, a recipient offline), in milliseconds."),
    retainPerRecipient: integer(1, 100_000).default(1000).describe("Most pushes kept per recipient; the oldest go first."),
    template: template.optional(),
    ...pacing,
  })
  .describe("Stream to browsers and apps as server-sent events: GET /v1/subscribe/<topic>?to=<recipient> on any node.");

/** The `channel` values, in the order messages list them. */
const CHANNEL_KINDS = ["nats", "webhook", "email", "webpush", "apns", "fcm", "sse"] as const;

/** Keys of the topic as a whole, refused inside one of its channels with where they belong. */
const topicLevel = Object.fromEntries(
  Object.keys(pacing).map((key) => [key, z.never({ error: 'is a setting of the topic, not of one of its channels: put it beside "channels"' }).optional()]),
) as { [K in keyof typeof pacing]: z.ZodOptional<z.ZodNever> };

const channelEntry = {
  ...topicLevel,
  name: name()
    .optional()
    .describe("This channel's name within the topic (dead letters, metrics and retries name it). Default: the channel kind; unique within the topic."),
};

/** The name defaults to the channel kind. */
const named = <C extends { channel: string; name?: string | undefined }>(c: C) => ({ ...c, name: c.name ?? c.channel });

/**
 * `channel` left out: what tells a fan-out topic from a single-channel one. JSON Schema cannot say
 * "undefined", so the editor schema says "absent" (`not: {}` on an optional key) instead.
 */
const absent = z.undefined();
absent._zod.toJSONSchema = () => ({ not: {} });

const fanoutTopic = z
  .strictObject({
    channel: absent.optional(),
    channels: z
      .array(
        z.discriminatedUnion("channel", [
          natsTopic.extend(channelEntry).transform(named),
          webhookTopic.extend(channelEntry).transform(named),
          emailTopic.extend(channelEntry).transform(named),
          webpushTopic.extend(channelEntry).transform(named),
          apnsTopic.extend(channelEntry).transform(named),
          fcmTopic.extend(channelEntry).transform(named),
          sseTopic.extend(channelEntry).transform(named),
        ]),
        { error: (issue) => (issue.code === "invalid_type" ? mustBe("a list of channels, each as a topic of that channel is written", issue.input) : undefined) },
      )
      .min(1)
      .max(MAX_FANOUT_CHANNELS)
      .superRefine(checkFanoutChannels, { when: (payload) => Array.isArray(payload.value) })
      .describe(
        "The channels every message of the topic is pushed to, each with its own settings (template included) as a topic of that channel has them, and an optional name. Each channel is delivered, retried and dead-lettered on its own.",
      ),
    ...pacing,
    retry: webhookRetry.optional(),
  })
  .superRefine(checkFanoutAbortOn, always)
  // Without a `channel` key in its type, `"channels" in t` is what tells the two kinds of topic apart.
  .transform(({ channel: _absent, ...t }) => t)
  .describe("Push to several channels (fan-out).");

const kinds = CHANNEL_KINDS.map((k) => JSON.stringify(k)).join(", ");
const withoutChannel = `or, to push to several channels, leave "channel" out and list them in "channels"`;

const topic = z
  .preprocess(
    (value, ctx) => {
      // Neither key: say what either would be, rather than what a fan-out topic lacks.
      if (typeof value === "object" && value !== null && !("channel" in value) && !("channels" in value)) {
        ctx.addIssue({ code: "custom", path: ["channel"], message: `required: must be one of ${kinds}; ${withoutChannel}` });
      }
      return value;
    },
    z.discriminatedUnion("channel", [natsTopic, webhookTopic, emailTopic, webpushTopic, apnsTopic, fcmTopic, sseTopic, fanoutTopic], {
      error: (issue) => {
        if (issue.code !== "invalid_union") return undefined;
        const input = issue.input as Record<string, unknown> | undefined;
        const value = typeof input === "object" && input !== null ? input.channel : input;
        return `${mustBe(`one of ${kinds}`, value)}; ${withoutChannel}`;
      },
    }),
  )
  .describe("A topic and its push channel, or its channels.");

const configObject = z
  .strictObject({
    $schema: z.string().optional().describe("JSON Schema of this file, for editors; ignored by Herald."),
    cluster: name().describe("Cluster name, shown by `herald status`."),
    subjectPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, { error: (issue) => mustBe('1–32 letters, digits, "_" or "-"', issue.input) })
      .default("herald")
      .describe("First token of every Herald subject (<prefix>.in.<topic>, <prefix>.submit, …)."),
    nats,
    heartbeat,
    master,
    supervisor,
    http,
    limits,
    pipeline,
    nodes,
    faultInjection: z.boolean().default(false).describe("Allow `herald fault …` drills (crash an actor on purpose)."),
    rules: rulesSchema
      .default(() => ({ primary: "fifo" as const, secondary: "fifo" as const, maxCount: 100, maxAgeMs: 100 }))
      .describe("Default retrieval rules; seeds the rules bucket on first start."),
    topics: z
      .record(
        name().refine((t) => !t.startsWith("_"), { error: 'must not start with "_" (reserved for Herald\'s own subjects)' }),
        topic,
      )
      .default(() => ({}))
      .describe("Topics by name; a message published to <prefix>.in.<name> is pushed on the topic's channel."),
    collectors: collectors
      .default(() => [])
      .describe("Message sources the master's collector actors poll every intervalMs (the seed's timing collection unit)."),
  })
  .superRefine((c, ctx) => {
    // Parts may be malformed here (this runs even when fields failed), hence the type guards.
    const nodeList = (Array.isArray(c.nodes) ? c.nodes : []).map((n) => (typeof n === "object" && n !== null ? n : null));
    const preset = (c.master as { preset?: unknown } | undefined)?.preset;
    if (preset !== undefined && !nodeList.some((n) => n?.name === preset)) {
      ctx.addIssue({ code: "custom", path: ["master", "preset"], message: `no node named ${JSON.stringify(preset)} in nodes` });
    }
    const natsPort = c.nats?.embedded === true ? c.nats.port : undefined;
    nodeList.forEach((n, i) => {
      if (natsPort !== undefined && n?.http?.port === natsPort) {
        const message = `port ${natsPort} is the embedded nats-server's (nats.port)`;
        ctx.addIssue({ code: "custom", path: ["nodes", i, "http", "port"], message });
      }
    });
    checkCollectorTopics(c.collectors, c.topics, ctx);
  }, always)
  .meta({
    title: "Herald cluster config",
    description: "cluster.config.json: the nodes, NATS, liveness, rules and topics of a Herald cluster.",
  });

/**
 * The config schema: validates, applies defaults and fills the defaults that depend on other keys
 * (`nats.servers` from the embedded server, `master.preset` from the first node). Relative paths are
 * resolved later, by `parseConfig`, which knows the config file's directory.
 */
export const configSchema = configObject.transform(({ $schema: _ignored, ...c }) => ({
  ...c,
  nats: { ...c.nats, servers: c.nats.servers ?? [`nats://${c.nats.host}:${c.nats.port}`] },
  master: { preset: c.master.preset ?? c.nodes[0]!.name },
}));

/** A validated config with every default applied and `nats.storeDir` absolute. */
export type HeraldConfig = z.output<typeof configSchema>;
/** One entry of `nodes`. */
export type NodeConfig = HeraldConfig["nodes"][number];
/** One entry of `topics`. */
export type TopicConfig = HeraldConfig["topics"][string];
/** A topic that pushes to several channels (`channels`). */
export type FanoutTopicConfig = Extract<TopicConfig, { channels: unknown }>;
/** A topic that pushes to one channel (`channel`). */
export type SingleTopicConfig = Exclude<TopicConfig, { channels: unknown }>;
/** One channel of a fan-out topic: the settings of a topic of that channel, and its name. */
export type ChannelConfig = FanoutTopicConfig["channels"][number];
export type NatsTopicConfig = Extract<TopicConfig, { channel: "nats" }>;
export type WebhookTopicConfig = Extract<TopicConfig, { channel: "webhook" }>;
export type EmailTopicConfig = Extract<TopicConfig, { channel: "email" }>;
export type WebPushTopicConfig = Extract<TopicConfig, { channel: "webpush" }>;
export type ApnsTopicConfig = Extract<TopicConfig, { channel: "apns" }>;
export type FcmTopicConfig = Extract<TopicConfig, { channel: "fcm" }>;
export type SseTopicConfig = Extract<TopicConfig, { channel: "sse" }>;
/** One entry of `collectors`. */
export type CollectorConfig = HeraldConfig["collectors"][number];
export type PostgresCollectorConfig = Extract<CollectorConfig, { kind: "postgres" }>;
export type HttpCollectorConfig = Extract<CollectorConfig, { kind: "http" }>;


function isInt(value: unknown): value is number {
  return Number.isInteger(value);
}


/**
 * What is wrong with a webhook secret, or undefined. The key is the base64-decoded part after
 * `whsec_`, or else the string's UTF-8 bytes (actors/pusher/channels/signature.ts); Standard
 * Webhooks keys are 24–64 bytes. The message never quotes the secret.
 */
function webhookSecretProblem(secret: string): string | undefined {
  const { min, max } = SECRET_BYTES;
  const howTo = `(make one with: echo "whsec_$(openssl rand -base64 32)")`;
  if (secret.startsWith("whsec_")) {
    const b64 = secret.slice("whsec_".length);
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      return `must be "whsec_" followed by standard base64 (A–Z a–z 0–9 + /, padded with =) ${howTo}`;
    }
    const bytes = (b64.length / 4) * 3 - (b64.length - b64.replace(/=+$/, "").length);
    if (bytes < min || bytes > max) return `decodes to ${bytes} bytes; a whsec_ secret must decode to ${min}–${max} bytes ${howTo}`;
    return undefined;
  }
  const bytes = new TextEncoder().encode(secret).length;
  if (bytes < min || bytes > max) {
    return `is ${bytes} bytes; a raw secret (used as its UTF-8 bytes) must be ${min}–${max} bytes ${howTo}`;
  }
  return undefined;
}
