/**
 * The `collectors` part of the config: the seed's timing message collection unit. Each entry is
 * one source the master's collector actors poll every intervalMs; the actor side is
 * actors/collector/.
 */
import * as z from "zod";
import { integer, mustBe } from "./errors.js";
import { always, HEADER_NAME, name, port } from "./fields.js";

/**
 * A PostgreSQL identifier exactly as written. Collectors always quote identifiers, so case is
 * kept and any character is safe; only what PostgreSQL itself refuses (empty, NUL, > 63) is refused.
 */
const pgIdentifier = () =>
  z.string({ error: (issue) => mustBe("a column name", issue.input) }).refine(isPgIdentifier, {
    error: (issue) => mustBe("a PostgreSQL identifier of 1–63 characters (used exactly as written, case-sensitive)", issue.input),
  });

const pgTable = z.string({ error: (issue) => mustBe("a table name", issue.input) }).refine(
  (s) => {
    const parts = s.split(".");
    return parts.length <= 2 && parts.every(isPgIdentifier);
  },
  { error: (issue) => mustBe('"table" or "schema.table" (each part 1–63 characters, used exactly as written)', issue.input) },
);

/** Keys every collector has, whatever its kind. */
const collectorCommon = {
  name: name().describe("Unique collector name: its checkpoint, its status entry and the envelope source collector:<name>."),
  intervalMs: integer(10, 86_400_000)
    .default(1000)
    .describe("The seed's T: a collection starts this often, in milliseconds; each one pages through batches until caught up."),
  batchSize: integer(1, 10_000).default(500).describe("Rows or messages fetched, queued and checkpointed together."),
  backoffMaxMs: integer(0, 86_400_000)
    .default(30_000)
    .describe("A failing source is retried after intervalMs, then 2×, 4× … that, up to this many milliseconds."),
};

const postgresCollector = z
  .strictObject({
    kind: z.literal("postgres"),
    ...collectorCommon,
    connectionString: z
      .string()
      .regex(/^postgres(ql)?:\/\//, { error: (issue) => mustBe("a postgres:// or postgresql:// URL", issue.input) })
      .optional()
      .describe("postgres://user:password@host:port/database. Alternative to host/port/database/user/password."),
    host: z.string().min(1).optional().describe("PostgreSQL host (when no connectionString)."),
    port: port.optional().describe("PostgreSQL port. Default 5432."),
    database: z.string().min(1).optional().describe("Database name. Default: the user name."),
    user: z.string().min(1).optional().describe("User name."),
    password: z.string().optional().describe("Password. Absent: none (trust or peer authentication)."),
    table: pgTable.describe('Table (or view) to collect from: "table" or "schema.table".'),
    keyColumn: pgIdentifier().describe("Primary key column: the tiebreaker of the cursor and part of each message id."),
    updatedAtColumn: pgIdentifier().describe(
      "Column set on every insert and update, ideally by a trigger (timestamptz, or timestamp read as UTC; any ordered type works, lag is then not reported). Rows where it is NULL are not collected. Index (updatedAtColumn, keyColumn).",
    ),
    recipientColumn: pgIdentifier().optional().describe("Column whose value becomes the message's `to`."),
    dataColumns: z
      .array(pgIdentifier())
      .min(1)
      .optional()
      .describe("Columns copied into the message's `data`. Default: every column."),
    topic: name().optional().describe("Topic of every collected row (or give topicColumn)."),
    topicColumn: pgIdentifier().optional().describe("Column holding each row's topic (or give topic)."),
    settleMs: integer(0, 3_600_000)
      .default(0)
      .describe(
        "Leave rows whose updatedAtColumn is newer than now() − settleMs (database clock) for a later collection, in milliseconds. Writers whose transactions commit out of timestamp order need this above their longest write transaction, or a row committed late behind the cursor is never collected. 0: collect at once.",
      ),
    startAt: z
      .enum(["beginning", "now"])
      .default("beginning")
      .describe("Where a collector without a checkpoint starts: every existing row, or only rows written from now on."),
    connectTimeoutMs: integer(100, 600_000).default(5000).describe("Connection timeout, in milliseconds."),
    queryTimeoutMs: integer(100, 3_600_000).default(30_000).describe("Statement timeout of each query, in milliseconds."),
  })
  .superRefine((c, ctx) => {
    const discrete = (["host", "port", "database", "user", "password"] as const).filter((k) => c[k] !== undefined);
    if (c.connectionString !== undefined && discrete.length > 0) {
      const message = `give connectionString or ${discrete.join("/")}, not both`;
      ctx.addIssue({ code: "custom", path: ["connectionString"], message });
    } else if (c.connectionString === undefined && c.host === undefined) {
      const message = "required: connectionString, or host (with port, database, user, password)";
      ctx.addIssue({ code: "custom", path: ["connectionString"], message });
    }
    if (c.topic !== undefined && c.topicColumn !== undefined) {
      ctx.addIssue({ code: "custom", path: ["topicColumn"], message: "give topic or topicColumn, not both" });
    } else if (c.topic === undefined && c.topicColumn === undefined) {
      const message = "required: topic (one topic for every row) or topicColumn (each row's topic)";
      ctx.addIssue({ code: "custom", path: ["topic"], message });
    }
  }, always)
  .describe("Collect rows inserted or updated in a PostgreSQL table, by a keyset cursor on (updatedAtColumn, keyColumn).");

const httpCollector = z
  .strictObject({
    kind: z.literal("http"),
    ...collectorCommon,
    url: z
      .url({ protocol: /^https?$/, error: (issue) => mustBe("an http:// or https:// URL", issue.input) })
      .describe("Source URL, fetched with GET; it answers { messages: [...], cursor }."),
    cursorParam: z.string().min(1).default("cursor").describe("Query parameter carrying the cursor (absent on the very first request)."),
    limitParam: z.string().min(1).optional().describe("Query parameter carrying batchSize. Absent: not sent."),
    timeoutMs: integer(100, 300_000).default(10_000).describe("Request timeout, in milliseconds."),
    maxBodyBytes: integer(1024, 1024 * 1024 * 1024)
      .default(16 * 1024 * 1024)
      .describe("Largest answer body read, in bytes; a larger one is a source error (retried with backoff)."),
    headers: z
      .record(z.string().regex(HEADER_NAME, { error: "must be a valid HTTP header name" }), z.string())
      .optional()
      .describe("Extra request headers (an Authorization token, say)."),
    topic: name().optional().describe("Topic of messages that name none. Absent: every message must carry its topic."),
  })
  .describe("Collect pages of messages from an HTTP endpoint that pages by cursor.");

export const collectors = z
  .array(z.discriminatedUnion("kind", [postgresCollector, httpCollector]))
  .superRefine((list, ctx) => {
    const seen = new Map<unknown, number>();
    list.forEach((c, i) => {
      if (typeof c !== "object" || c === null) return;
      const first = seen.get(c.name);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate collector name "${c.name}" (also collectors[${first}])` });
      } else seen.set(c.name, i);
    });
  }, { when: (payload) => Array.isArray(payload.value) });

/** A collector's fixed topic must be a configured one (a column's or a message's topic is checked per message). */
export function checkCollectorTopics(list: unknown, topics: unknown, ctx: z.RefinementCtx): void {
  if (!Array.isArray(list) || typeof topics !== "object" || topics === null) return;
  list.forEach((c, i) => {
    const t = (c as { topic?: unknown } | null)?.topic;
    if (typeof t !== "string" || Object.hasOwn(topics, t)) return;
    const known = Object.keys(topics);
    const hint = known.length === 0 ? "no topics are configured" : `known topics: ${known.map((k) => JSON.stringify(k)).join(", ")}`;
    ctx.addIssue({ code: "custom", path: ["collectors", i, "topic"], message: `unknown topic "${t}": ${hint}` });
  });
}

function isPgIdentifier(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && !s.includes("\0");
}
