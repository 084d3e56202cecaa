/**
 * The collectors' pure parts: ids, the schedule, the SQL (quoting, keyset cursor), rows and HTTP
 * pages as items, the fencing decision, error texts, config validation, and status rendering.
 */
import { describe, expect, it } from "vitest";
import { decideClaim } from "../actors/collector/checkpoints.js";
import { collectedId } from "../actors/collector/ids.js";
import { messageToItem, parsePage, sameCursor } from "../actors/collector/page.js";
import { describePgError } from "../actors/collector/postgres.js";
import { jsonSafe, rowToItem } from "../actors/collector/rows.js";
import { nextDelayMs, periodMs } from "../actors/collector/schedule.js";
import { asPgCursor, batchQuery, latestQuery, probeQuery, quoteIdent, quoteTable } from "../actors/collector/sql.js";
import { renderStatus } from "../runtime/cli/render-status.js";
import { ConfigError, parseConfig } from "../runtime/config/index.js";
import { CALLER_ID } from "../runtime/pipeline/envelope.js";
import { collectorView, type ClusterStatus, type CollectorStatus } from "../runtime/supervisor/status.js";

describe("collected ids", () => {
  it("are deterministic, ULID-shaped, valid caller ids, and sort by source time", () => {
    const a = collectedId("collector:orders", ["42", "2024-05-01 10:00:00.123456+00"], 1_714_557_600_123);
    expect(collectedId("collector:orders", ["42", "2024-05-01 10:00:00.123456+00"], 1_714_557_600_123)).toBe(a);
    expect(a).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(CALLER_ID.test(a)).toBe(true);
    // Another version of the row, another row, another collector: other ids.
    expect(collectedId("collector:orders", ["42", "2024-05-01 10:00:00.123457+00"], 1_714_557_600_123)).not.toBe(a);
    expect(collectedId("collector:orders", ["43", "2024-05-01 10:00:00.123456+00"], 1_714_557_600_123)).not.toBe(a);
    expect(collectedId("collector:audit", ["42", "2024-05-01 10:00:00.123456+00"], 1_714_557_600_123)).not.toBe(a);
    // Identity parts cannot run into each other.
    expect(collectedId("s", ["a", "bc"])).not.toBe(collectedId("s", ["ab", "c"]));
    const early = collectedId("s", ["1"], 1000);
    const late = collectedId("s", ["0"], 2000);
    expect(early < late).toBe(true);
    expect(collectedId("s", ["x"]).slice(0, 10)).toBe("0000000000");
    expect(collectedId("s", ["x"], -5).slice(0, 10)).toBe("0000000000");
  });
});

describe("schedule", () => {
  const base = { intervalMs: 200, backoffMaxMs: 1000 };
  it("starts collections every T, start to start, and backs off failures up to the cap", () => {
    expect(nextDelayMs({ ...base, failures: 0, elapsedMs: 50 })).toBe(150);
    expect(nextDelayMs({ ...base, failures: 0, elapsedMs: 500 })).toBe(0);
    expect([1, 2, 3, 4, 5, 60].map((failures) => periodMs({ ...base, failures }))).toEqual([200, 400, 800, 1000, 1000, 1000]);
    // A cap below T never makes retries faster than T.
    expect(periodMs({ intervalMs: 5000, backoffMaxMs: 100, failures: 3 })).toBe(5000);
  });
});

describe("SQL", () => {
  const cfg = { table: "app.Orders", keyColumn: "id", updatedAtColumn: "updated_at", settleMs: 0 };
  it("quotes identifiers so config text never becomes SQL", () => {
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(quoteTable("app.Orders")).toBe('"app"."Orders"');
    const evil = { ...cfg, table: 'x"; DROP TABLE users; --', keyColumn: 'id") OR (1=1' };
    const q = batchQuery(evil, null, 10, true);
    expect(q.text).toContain('FROM "x""; DROP TABLE users; --" AS t');
    expect(q.text).toContain('t."id"") OR (1=1"');
    expect(() => quoteIdent("")).toThrow();
    expect(() => quoteIdent("a\0b")).toThrow();
  });

  it("keyset cursor: (updated_at, key) > ($1, $2), ordered, limited, values bound", () => {
    const q = batchQuery(cfg, { ts: "2024-01-01 00:00:00.000001+00", key: "7" }, 500, true);
    expect(q.text).toBe(
      'SELECT t.*, t."updated_at"::text AS "__herald_ts", t."id"::text AS "__herald_key", extract(epoch FROM t."updated_at")::float8 * 1000 AS "__herald_ms"' +
        ' FROM "app"."Orders" AS t WHERE t."updated_at" IS NOT NULL AND (t."updated_at", t."id") > ($1, $2)' +
        ' ORDER BY t."updated_at", t."id" LIMIT $3',
    );
    expect(q.values).toEqual(["2024-01-01 00:00:00.000001+00", "7", 500]);
    expect(q.text).not.toMatch(/OFFSET/);
  });

  it("selects only the configured columns; settles; the first batch has no cursor", () => {
    const c = { ...cfg, dataColumns: ["body", "body"], recipientColumn: "user", topicColumn: "kind", settleMs: 1500 };
    const q = batchQuery(c, null, 10, true);
    expect(q.text).toMatch(/^SELECT t\."body", t\."user", t\."kind", /);
    expect(q.text).toContain(`t."updated_at" <= now() - $1::float8 * interval '1 millisecond'`);
    expect(q.values).toEqual([1500, 10]);
    // A non-time updated_at (a version counter): no epoch, no settle.
    expect(batchQuery(c, null, 10, false).text).not.toMatch(/extract|now\(\)/);
    expect(probeQuery(c)).toBe('SELECT t."body", t."user", t."kind", t."updated_at" AS "__herald_ts", t."id" AS "__herald_key" FROM "app"."Orders" AS t LIMIT 0');
    expect(latestQuery(c)).toMatch(/ORDER BY t\."updated_at" DESC, t\."id" DESC LIMIT 1$/);
  });

  it("reads cursors back from checkpoints strictly", () => {
    expect(asPgCursor(null)).toBeNull();
    expect(asPgCursor({ ts: "t", key: "k" })).toEqual({ ts: "t", key: "k" });
    expect(asPgCursor("12")).toBeUndefined();
    expect(asPgCursor({ ts: 1, key: "k" })).toBeUndefined();
  });
});

describe("rows as items", () => {
  const row = { id: 3, who: "u-3", kind: "promo", body: "hi", raw: Buffer.from("ab"), n: Number.NaN, __herald_ts: "2024-01-01 00:00:00.5+00", __herald_key: "3", __herald_ms: 1_704_067_200_500 };
  it("maps data, recipient and topic; the cursor is the row's text forms", () => {
    const { item, cursor } = rowToItem(row, { source: "collector:o", topicColumn: "kind", recipientColumn: "who" });
    expect(cursor).toEqual({ ts: "2024-01-01 00:00:00.5+00", key: "3" });
    expect(item.submission).toEqual({ topic: "promo", to: "u-3", data: { id: 3, who: "u-3", kind: "promo", body: "hi", raw: "YWI=", n: "NaN" } });
    expect(item).toMatchObject({ timeMs: 1_704_067_200_500, timeText: "2024-01-01 00:00:00.5+00", id: collectedId("collector:o", ["3", "2024-01-01 00:00:00.5+00"], 1_704_067_200_500) });
    const picked = rowToItem(row, { source: "collector:o", topic: "t", dataColumns: ["body"] }).item.submission;
    expect(picked).toEqual({ topic: "t", data: { body: "hi" } });
    // A NULL topic leaves the topic out: validation then dead-letters the row with its reason.
    expect(rowToItem({ ...row, kind: null }, { source: "s", topicColumn: "kind" }).item.submission).not.toHaveProperty("topic");
  });
  it("jsonSafe keeps a json column's __proto__ key as data (refused later by name), not as a prototype", () => {
    const v = jsonSafe(JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(jsonSafe([new Date(0), 10n])).toEqual(["1970-01-01T00:00:00.000Z", "10"]);
  });
});

describe("HTTP pages", () => {
  it("checks the page shape", () => {
    expect(parsePage({ messages: [], cursor: null })).toEqual({ ok: true, messages: [], cursor: undefined });
    expect(parsePage({ messages: [{}], cursor: 5 })).toEqual({ ok: true, messages: [{}], cursor: 5 });
    expect(parsePage([])).toMatchObject({ ok: false, error: expect.stringContaining("got an array") });
    expect(parsePage({ cursor: "x" })).toMatchObject({ ok: false, error: expect.stringContaining('"messages" must be an array') });
    expect(parsePage({ messages: [{}] })).toMatchObject({ ok: false, error: expect.stringContaining('must carry the "cursor"') });
    expect(parsePage({ messages: [], cursor: {} })).toMatchObject({ ok: false, error: expect.stringContaining('"cursor" must be a string or a number') });
  });
  it("derives ids from the message id and version, else from its place in the page", () => {
    const opts = { source: "collector:h", topic: "feed" };
    const a = messageToItem({ id: "m1", updatedAt: "2024-01-01T00:00:00Z", data: { x: 1 } }, 0, "c9", opts);
    expect(a.submission).toEqual({ topic: "feed", data: { x: 1 } });
    expect(a.timeMs).toBe(Date.parse("2024-01-01T00:00:00Z"));
    expect(messageToItem({ id: "m1", updatedAt: "2024-01-01T00:00:00Z" }, 3, "other", opts).id).toBe(a.id);
    expect(messageToItem({ id: "m1", updatedAt: "2024-01-02T00:00:00Z" }, 0, "c9", opts).id).not.toBe(a.id);
    const b = messageToItem({ data: {} }, 2, "c9", opts);
    expect(messageToItem({ data: { changed: true } }, 2, "c9", opts).id).toBe(b.id);
    expect(messageToItem({ data: {} }, 3, "c9", opts).id).not.toBe(b.id);
    // The message's own topic wins; unknown fields stay, to be refused by validation.
    expect(messageToItem({ topic: "alerts", extra: 1 }, 0, null, opts).submission).toEqual({ topic: "alerts", extra: 1 });
    expect(messageToItem("nope", 0, null, opts).submission).toBe("nope");
    expect(sameCursor("1", 1)).toBe(false);
    expect(sameCursor(undefined, null)).toBe(true);
  });
});

describe("fencing decision", () => {
  it("create, claim an older epoch, use our own, refuse a newer one", () => {
    expect(decideClaim(undefined, 3)).toBe("create");
    expect(decideClaim({ epoch: 2 }, 3)).toBe("claim");
    expect(decideClaim({ epoch: 3 }, 3)).toBe("use");
    expect(decideClaim({ epoch: 4 }, 3)).toBe("fenced");
  });
});

describe("PostgreSQL errors", () => {
  const cfg = { table: "app.orders", queryTimeoutMs: 1000 };
  const err = (code: string, message: string) => Object.assign(new Error(message), { code });
  it("name the config key to check and never the password", () => {
    expect(describePgError(err("42P01", 'relation "app.orders" does not exist'), cfg, "collectors[0]", "db:5432/shop")).toBe(
      'PostgreSQL at db:5432/shop: relation "app.orders" does not exist (check collectors[0].table = "app.orders"; names are case-sensitive as written)',
    );
    expect(describePgError(err("42703", "column t.x does not exist"), cfg, "collectors[1]", "db")).toMatch(/check collectors\[1\]: keyColumn, updatedAtColumn/);
    expect(describePgError(err("57014", "canceling statement due to statement timeout"), cfg, "collectors[0]", "db")).toMatch(/queryTimeoutMs = 1000 ms/);
    const refused = new AggregateError([err("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1")], "");
    expect(describePgError(refused, cfg, "collectors[0]", "127.0.0.1:1/test")).toBe("cannot reach PostgreSQL at 127.0.0.1:1/test: connect ECONNREFUSED 127.0.0.1:1");
  });
});

describe("collectors config", () => {
  const base = { cluster: "c", nats: { servers: ["nats://127.0.0.1:4222"] }, nodes: [{ name: "a" }], topics: { t: { channel: "nats" } } };
  const pgc = { name: "o", kind: "postgres", connectionString: "postgres://u@h/db", table: "app.orders", keyColumn: "id", updatedAtColumn: "updated_at", topic: "t" };
  const issues = (collectors: unknown[]) => {
    try {
      parseConfig({ ...base, collectors }, ".");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    }
    throw new Error("accepted");
  };

  it("fills defaults", () => {
    const config = parseConfig({ ...base, collectors: [pgc, { name: "h", kind: "http", url: "https://api.example.com/feed" }] }, ".");
    expect(config.collectors[0]).toEqual({ ...pgc, intervalMs: 1000, batchSize: 500, backoffMaxMs: 30_000, settleMs: 0, startAt: "beginning", connectTimeoutMs: 5000, queryTimeoutMs: 30_000 });
    expect(config.collectors[1]).toEqual({ name: "h", kind: "http", url: "https://api.example.com/feed", intervalMs: 1000, batchSize: 500, backoffMaxMs: 30_000, cursorParam: "cursor", timeoutMs: 10_000, maxBodyBytes: 16 * 1024 * 1024 });
  });

  it("names the path and the reason of every problem", () => {
    expect(issues([{ ...pgc, kind: "mysql" }])).toEqual(['collectors[0].kind: must be one of "postgres", "http" (got "mysql")']);
    expect(issues([{ ...pgc, connectionString: undefined }])).toEqual(["collectors[0].connectionString: required: connectionString, or host (with port, database, user, password)"]);
    expect(issues([{ ...pgc, host: "db", password: "x" }])).toEqual(["collectors[0].connectionString: give connectionString or host/password, not both"]);
    expect(issues([{ ...pgc, topic: undefined }])).toEqual(["collectors[0].topic: required: topic (one topic for every row) or topicColumn (each row's topic)"]);
    expect(issues([{ ...pgc, topicColumn: "kind" }])).toEqual(["collectors[0].topicColumn: give topic or topicColumn, not both"]);
    expect(issues([{ ...pgc, topic: "nope" }])).toEqual(['collectors[0].topic: unknown topic "nope": known topics: "t"']);
    expect(issues([{ ...pgc, table: "a.b.c" }])[0]).toMatch(/^collectors\[0\]\.table: must be "table" or "schema\.table"/);
    expect(issues([{ ...pgc, dataColumns: [] }])).toEqual(["collectors[0].dataColumns: must not be empty"]);
    expect(issues([{ ...pgc, intervalMs: 0 }])).toEqual(["collectors[0].intervalMs: must be an integer ≥ 10 (got 0)"]);
    expect(issues([pgc, { ...pgc }])).toEqual(['collectors[1].name: duplicate collector name "o" (also collectors[0])']);
    expect(issues([{ name: "h", kind: "http", url: "ftp://x", tpoic: "t" }])).toEqual([
      'collectors[0].url: must be an http:// or https:// URL (got "ftp://x")',
      'collectors[0]: unknown key "tpoic" (did you mean "topic"?)',
    ]);
  });
});

describe("collectors in status", () => {
  const record: CollectorStatus = {
    name: "orders", kind: "postgres", state: "failing", node: "n2", actor: "collector-0", epoch: 3,
    lastTickAt: "2024-01-01T00:00:10.000Z", lastSuccessAt: "2024-01-01T00:00:00.000Z", collected: 120, duplicates: 4, deadLettered: 0,
    newestUpdatedAt: "2024-01-01 00:00:00+00", lagMs: 2500, caughtUp: false, consecutiveFailures: 2,
    lastError: 'collector "orders" (postgres): cannot reach PostgreSQL at db:5432/shop: connect ECONNREFUSED', lastErrorAt: "2024-01-01T00:00:10.000Z", nextAttemptAt: "2024-01-01T00:00:10.400Z",
  };
  it("fills waiting and stale", () => {
    expect(collectorView({ name: "new", kind: "http" }, undefined, { node: "n1", epoch: 3 })).toMatchObject({ name: "new", state: "waiting", node: null, collected: 0 });
    expect(collectorView({ name: "orders", kind: "postgres" }, record, { node: "n3", epoch: 4 }).state).toBe("stale");
    expect(collectorView({ name: "orders", kind: "postgres" }, record, { node: "n2", epoch: 3 }).state).toBe("failing");
  });
  it("renders a collectors section", () => {
    const s: ClusterStatus = { cluster: "c", master: { node: "n2", epoch: 3 }, nodes: [], queue: { pending: 0 }, exceptions: { retrying: 0, dead: 0 }, scheduled: { pending: 0 }, warnings: [], collectors: [record, { ...record, name: "feed", kind: "http", state: "ok", lagMs: null, lastError: null }] };
    const text = renderStatus(s, Date.parse("2024-01-01T00:00:12.000Z"));
    expect(text).toContain(
      [
        "COLLECTOR  KIND      STATE    NODE  LAST TICK  COLLECTED  LAG    LAST ERROR",
        'orders     postgres  failing  n2    2.0 s ago  120        2.5 s  collector "orders" (postgres): cannot reach PostgreSQL at db:5432/shop: connect ECONNREFUSED',
        "feed       http      ok       n2    2.0 s ago  120        -      -",
      ].join("\n"),
    );
    expect(renderStatus({ ...s, collectors: [] })).not.toContain("COLLECTOR");
  });
});
