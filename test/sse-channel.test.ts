/**
 * The `sse` channel on a real two-node cluster: pushes stored in the topic's retention stream and
 * streamed from GET /v1/subscribe/<topic>?to= on either node — the backlog of a recipient who was
 * offline, Last-Event-ID resumption on the other node, heartbeats, tokens, CORS — first read with
 * Node's fetch, then in real Chromium (Debian's, driven by playwright-core): an EventSource page
 * whose node is killed moves to the other node and shows what it missed, nothing twice.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LocalCluster, waitFor } from "../runtime/testing/index.js";
import { allRunning, startRunning } from "./helpers/cluster.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "sse-test-operator-token";

interface Event {
  id: string;
  data: Record<string, any>;
}

/** An open stream read with fetch: its events and comment lines as they come. */
interface Reader {
  status: number;
  headers: Headers;
  events: Event[];
  comments: string[];
  /** The body of a refusal (not a stream). */
  error?: string;
  close(): void;
}

async function subscribe(url: string, headers: Record<string, string> = {}): Promise<Reader> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const reader: Reader = { status: res.status, headers: res.headers, events: [], comments: [], close: () => abort.abort() };
  if (res.status !== 200) {
    const text = await res.text();
    try {
      reader.error = (JSON.parse(text) as { error: string }).error;
    } catch {
      reader.error = text;
    }
    return reader;
  }
  void (async () => {
    const decoder = new TextDecoder();
    let text = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          let id = "";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) reader.comments.push(line.slice(1).trim());
            else if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data !== "") reader.events.push({ id, data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted
    }
  })();
  return reader;
}

describe("the sse channel", () => {
  let cluster: LocalCluster;
  const base: string[] = [];
  const auth = { authorization: `Bearer ${TOKEN}` };

  const publish = async (to: string, n: number) => {
    const r = await cluster.cli(["publish", "alerts", "--to", to, "--data", JSON.stringify({ n }), "-c", cluster.configFile]);
    expect(r.code, r.stderr).toBe(0);
  };
  const ns = (r: Reader) => r.events.map((e) => e.data.data.n as number);

  beforeAll(async () => {
    cluster = await startRunning({
      nodes: 2,
      http: true,
      intervalMs: 200,
      timeoutMs: 1000,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        http: { token: TOKEN, sseHeartbeatMs: 300, corsOrigins: ["http://127.0.0.1:1"] },
        topics: { alerts: { channel: "sse", template: { title: "Alert {{n}}" }, retainMs: 600_000 } },
      },
    });
    for (const n of cluster.config.nodes as { http: { port: number } }[]) base.push(`http://127.0.0.1:${n.http.port}`);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test("a recipient who was offline gets the backlog on connect, then pushes live; Last-Event-ID resumes on the other node", async () => {
    for (const n of [1, 2, 3]) await publish("ada", n);
    // Stored before anyone listens: delivered means the retention stream has them.
    await waitFor(async () => (await cluster.status()).nodes.length === 2 && (await streamCount(cluster, "ada")) === 3, { timeoutMs: 20_000, what: "three pushes retained for ada" });

    const first = await subscribe(`${base[0]}/v1/subscribe/alerts?to=ada`, auth);
    expect(first.status, first.error).toBe(200);
    expect(first.headers.get("content-type")).toMatch(/^text\/event-stream/);
    await waitFor(() => first.events.length === 3, { timeoutMs: 10_000, what: "the backlog of three" });
    expect(ns(first)).toEqual([1, 2, 3]);
    // id: is the message id, data: the push JSON (rendered fields beside the data).
    expect(first.events[0]!.data).toMatchObject({ id: first.events[0]!.id, topic: "alerts", to: "ada", title: "Alert 1", data: { n: 1 } });

    await publish("ada", 4);
    await publish("bob", 99);
    await waitFor(() => first.events.length === 4, { timeoutMs: 10_000, what: "a live push" });
    expect(ns(first)).toEqual([1, 2, 3, 4]);
    await waitFor(() => first.comments.includes("heartbeat"), { timeoutMs: 5000, what: "a heartbeat comment" });
    first.close();

    // Missed while away, read on the other node: exactly what came after the last id it had.
    await publish("ada", 5);
    const resumed = await subscribe(`${base[1]}/v1/subscribe/alerts?to=ada`, { ...auth, "last-event-id": first.events[3]!.id });
    expect(resumed.status, resumed.error).toBe(200);
    await waitFor(() => resumed.events.length >= 1, { timeoutMs: 10_000, what: "the missed push" });
    await publish("ada", 6);
    await waitFor(() => resumed.events.length >= 2, { timeoutMs: 10_000, what: "the next live push" });
    expect(ns(resumed)).toEqual([5, 6]);
    resumed.close();

    // The query form, for a client that moves nodes itself (EventSource cannot set the header).
    const byQuery = await subscribe(`${base[0]}/v1/subscribe/alerts?to=ada&lastEventId=${encodeURIComponent(first.events[1]!.id)}`, auth);
    await waitFor(() => byQuery.events.length >= 4, { timeoutMs: 10_000, what: "the pushes after the second" });
    expect(ns(byQuery)).toEqual([3, 4, 5, 6]);
    byQuery.close();
  });

  test("access: the operator's token or one issued to the recipient; refusals say what is wrong", async () => {
    const none = await subscribe(`${base[0]}/v1/subscribe/alerts?to=ada`);
    expect(none.status).toBe(401);
    expect(none.error).toContain("herald recipients token ada");
    const issued = await cluster.cli(["recipients", "token", "carol", "-c", cluster.configFile]);
    expect(issued.code, issued.stderr).toBe(0);
    const token = issued.stdout.trim();
    expect(token).toMatch(/^hrt_/);
    await publish("carol", 7);
    const mine = await subscribe(`${base[1]}/v1/subscribe/alerts?to=carol&access_token=${token}`, { origin: "http://127.0.0.1:1" });
    expect(mine.status, mine.error).toBe(200);
    expect(mine.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:1");
    await waitFor(() => mine.events.length === 1, { timeoutMs: 10_000, what: "carol's push" });
    mine.close();
    // Carol's token reads carol's streams only; the registry keeps its hash, not the token.
    expect((await subscribe(`${base[0]}/v1/subscribe/alerts?to=ada&access_token=${token}`)).status).toBe(401);
    const shown = await cluster.cli(["recipients", "get", "carol", "--json", "-c", cluster.configFile]);
    expect(JSON.parse(shown.stdout)).toEqual({ streamTokens: 1 });
    expect(shown.stdout).not.toContain(token);
    const revoked = await cluster.cli(["recipients", "token", "carol", "--revoke", "-c", cluster.configFile]);
    expect(revoked.stdout).toBe("recipient carol: 1 stream token(s) withdrawn\n");
    expect((await subscribe(`${base[0]}/v1/subscribe/alerts?to=carol&access_token=${token}`)).status).toBe(401);

    const unknown = await subscribe(`${base[0]}/v1/subscribe/nope?to=ada`, auth);
    expect([unknown.status, unknown.error]).toEqual([404, expect.stringContaining('no sse topic "nope"')]);
    const noTo = await subscribe(`${base[0]}/v1/subscribe/alerts`, auth);
    expect([noTo.status, noTo.error]).toEqual([400, expect.stringContaining("?to=<recipient id>")]);
    // A message without a recipient, or with one that is not an id, is a dead letter with the reason.
    expect((await cluster.cli(["publish", "alerts", "--data", '{"n":0}', "-c", cluster.configFile])).code).toBe(0);
    await waitFor(async () => {
      const rows = JSON.parse((await cluster.cli(["dlq", "list", "--json", "-c", cluster.configFile])).stdout || "[]") as { error: string }[];
      return rows.some((r) => r.error.includes('"to" must be a recipient id, got none'));
    }, { timeoutMs: 20_000, what: "the dead letter of a push with no recipient" });
  });

  test("in Chromium: an EventSource page whose node is killed moves to the other node and shows what it missed, nothing twice", async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install chromium (this test drives a real browser)`).toBe(true);
    const issued = await cluster.cli(["recipients", "token", "dora", "-c", cluster.configFile]);
    const token = issued.stdout.trim();
    // The page comes from a server of its own (another origin): the nodes allow it by CORS.
    const page = await servePage();
    const profile = mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
    let context: BrowserContext | undefined;
    try {
      await restartWithOrigin(cluster, page.origin);
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      });
      const tab = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      tab.on("pageerror", (err) => errors.push(err.message));
      const streams = base.map((b) => `${b}/v1/subscribe/alerts?to=dora&access_token=${token}`);
      await tab.goto(`${page.origin}/#${encodeURIComponent(JSON.stringify(streams))}`);
      const shown = () => tab.evaluate(() => (globalThis as any).shown as { id: string; n: number }[]);

      await publish("dora", 1);
      await waitFor(async () => (await shown()).length === 1, { timeoutMs: 15_000, what: "the first push in the page" });
      expect(await tab.evaluate(() => (globalThis as any).nodeIndex)).toBe(0);

      await cluster.kill("n1");
      // Published while the page has no stream: kept, and shown once it is back, on n2.
      await publish("dora", 2);
      await publish("dora", 3);
      await waitFor(async () => (await shown()).length >= 3, { timeoutMs: 30_000, what: "the missed pushes in the page, from n2" });
      await publish("dora", 4);
      await waitFor(async () => (await shown()).length >= 4, { timeoutMs: 15_000, what: "a live push on n2" });
      const seen = await shown();
      expect(seen.map((e) => e.n)).toEqual([1, 2, 3, 4]);
      expect(new Set(seen.map((e) => e.id)).size).toBe(4);
      expect(await tab.evaluate(() => (globalThis as any).nodeIndex)).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
      await page.close();
    }
  }, 180_000);
});

/** How many pushes the alerts topic's retention stream holds for `to`. */
async function streamCount(cluster: LocalCluster, to: string): Promise<number> {
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const jsm = await jetstreamManager(cluster.nc);
  const info = await jsm.streams.info("HERALD_SSE_alerts", { subjects_filter: `herald.sse.alerts.${to}` } as never);
  return (info.state.subjects as Record<string, number> | undefined)?.[`herald.sse.alerts.${to}`] ?? 0;
}

/** The nodes restarted with `origin` allowed to read streams (the page's origin is known only now). */
async function restartWithOrigin(cluster: LocalCluster, origin: string): Promise<void> {
  const { readFile, writeFile } = await import("node:fs/promises");
  const config = JSON.parse(await readFile(cluster.configFile, "utf8"));
  config.http.corsOrigins = [origin];
  await writeFile(cluster.configFile, JSON.stringify(config, null, 2));
  for (const n of ["n1", "n2"]) {
    await cluster.kill(n, "SIGTERM");
    cluster.startNode(n);
  }
  await cluster.waitStatus("both nodes running again", (s) => s.nodes.length === 2 && allRunning(s), 30_000);
}

/**
 * A page that shows a recipient's pushes: an EventSource on the first node; when it fails, the
 * next node, resuming after the last id shown (EventSource itself resends Last-Event-ID only to
 * the same URL).
 */
async function servePage(): Promise<{ origin: string; close(): Promise<void> }> {
  const html = `<!doctype html><meta charset="utf-8"><title>herald sse</title><ul id="list"></ul>
<script>
  const streams = JSON.parse(decodeURIComponent(location.hash.slice(1)));
  window.shown = [];
  window.nodeIndex = 0;
  let last;
  function connect() {
    const url = streams[window.nodeIndex] + (last ? "&lastEventId=" + encodeURIComponent(last) : "");
    const es = new EventSource(url);
    es.onmessage = (e) => {
      const push = JSON.parse(e.data);
      last = e.lastEventId;
      window.shown.push({ id: e.lastEventId, n: push.data.n });
      const li = document.createElement("li");
      li.textContent = push.title;
      document.getElementById("list").append(li);
    };
    es.onerror = () => {
      es.close();
      window.nodeIndex = (window.nodeIndex + 1) % streams.length;
      setTimeout(connect, 200);
    };
  }
  connect();
</script>`;
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
