/**
 * The web console in a real browser: Debian's Chromium driven by playwright-core, against a real
 * two-node cluster. Screenshots go to test-artifacts/console/ (ignored by git).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startWebhookServer, type WebhookServer } from "./helpers/webhook.js";
import { LocalCluster, waitFor } from "../runtime/testing/index.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "console-test-token";
const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "test-artifacts", "console");

describe("the web console in Chromium", () => {
  let cluster: LocalCluster;
  let hook: WebhookServer;
  let hookAccepts = false;
  /** Ids of the pushes the receiver accepted. */
  const accepted = () => hook.deliveries.filter((d) => d.status === 200).map((d) => String(d.json.id));
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let base: string;
  const pageErrors: string[] = [];

  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return (await res.json()) as any;
  };
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install chromium (the console test drives a real browser)`).toBe(true);
    mkdirSync(ARTIFACTS, { recursive: true });
    // It refuses with 400 (its messages become dead letters, reason rejected) until a test lets it accept.
    hook = await startWebhookServer(() => (hookAccepts ? 200 : 400));
    cluster = await LocalCluster.start({
      nodes: 2,
      http: true,
      intervalMs: 200,
      timeoutMs: 1000,
      actors: { ingest: 1, subqueue: 1, processor: 1, pusher: 1 },
      extra: {
        http: { token: TOKEN },
        topics: {
          demo: { channel: "nats", template: { title: "Hello {{name}}" } },
          hook: { channel: "webhook", url: hook.url },
        },
      },
    });
    cluster.startAll();
    await cluster.waitStatus("both nodes running", (s) => s.nodes.length === 2 && s.nodes.every((n) => n.state === "alive" && n.actors.length > 0 && n.actors.every((a) => a.state === "running")), 30_000);
    base = `http://127.0.0.1:${(cluster.config.nodes[0] as { http: { port: number } }).http.port}`;
    profile = mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
    // A fresh profile of our own (Playwright passes it as --user-data-dir).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(err.message));
    // Script errors only: the browser also logs every 4xx answer (401 before signing in, 400 for
    // the refused rule), which the tests cause on purpose.
    page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && pageErrors.push(m.text()));
  });

  afterAll(async () => {
    await context?.close();
    await cluster?.stop();
    await hook?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test("asks for the token, then shows every node of the cluster, live", async () => {
    await page.goto(`${base}/`);
    await page.locator("input[name=token]").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    for (const n of ["n1", "n2"]) await expect.poll(() => page.locator(`tr[data-node=${n}] [data-state]`).textContent(), { timeout: 15_000 }).toBe("alive");
    await expect.poll(() => page.locator("#master b").textContent()).toBe("n1");
    // A message scheduled for later is counted as scheduled, live.
    await api("POST", "/v1/messages", { topic: "demo", data: { name: "later" }, delayMs: 3_600_000 });
    await expect.poll(() => page.locator("#scheduled-pending").textContent(), { timeout: 15_000 }).toBe("1");
    // Pushes show on the topic's chart as they happen: its points add up to the deliveries since it started.
    await expect.poll(async () => Number(await page.locator("[data-chart=demo]").getAttribute("data-points")), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 10; i++) await api("POST", "/v1/messages", { topic: "demo", data: { name: `u${i}` } });
    // Two nodes share the work; the chart is of the node serving the console (n1), as its /metrics counts it.
    const n1Delivered = async () => {
      const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      return Number(/^herald_messages_delivered_total\{topic="demo",channel="nats"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    await waitFor(async () => (await cluster.status()).nodes.length === 2 && (await n1Delivered()) > 0, { timeoutMs: 15_000, what: "n1 delivering demo messages" });
    await expect.poll(async () => Number(await page.locator("[data-chart=demo]").getAttribute("data-delivered")) === (await n1Delivered()) && (await n1Delivered()) > 0, { timeout: 15_000 }).toBe(true);
    await shot("cluster");
    expect(pageErrors).toEqual([]);
  });

  test("a rule edit with an error shows the error and changes nothing", async () => {
    const before = await api("GET", "/v1/topics/demo/rules");
    const editor = page.locator("[data-rules=demo]");
    await expect.poll(() => editor.locator("textarea").inputValue(), { timeout: 10_000 }).toContain("primary");
    await editor.locator("textarea").fill('{ "primary": "sideways" }');
    await editor.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => editor.locator("[data-error]").textContent(), { timeout: 10_000 }).toContain("nothing was changed");
    expect(await editor.locator("[data-error]").textContent()).toContain("primary");
    expect(await api("GET", "/v1/topics/demo/rules")).toEqual(before);
    await shot("rule-error");
  });

  test("replaying a dead letter from the console delivers it", async () => {
    const { id } = await api("POST", "/v1/messages", { topic: "hook", data: { n: 1 } });
    const row = page.locator(`tr[data-letter="${id}"]`);
    await expect.poll(() => row.count(), { timeout: 20_000 }).toBe(1);
    expect(await row.textContent()).toContain("rejected");
    await shot("dead-letters");
    hookAccepts = true;
    await row.locator("input[type=checkbox]").check();
    await page.getByRole("button", { name: "Replay selected" }).click();
    await expect.poll(() => page.locator("#dlq-message").textContent(), { timeout: 10_000 }).toContain("replayed 1");
    await waitFor(() => accepted().includes(id), { timeoutMs: 20_000, what: "the replayed message at the webhook" });
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
  });

  test("a node killed turns dead on screen without a reload", async () => {
    await page.evaluate(() => ((globalThis as unknown as { heraldMark: number }).heraldMark = 42));
    await cluster.kill("n2", "SIGKILL");
    await expect.poll(() => page.locator("tr[data-node=n2] [data-state]").textContent(), { timeout: 20_000 }).toBe("dead");
    expect(await page.evaluate(() => (globalThis as unknown as { heraldMark?: number }).heraldMark)).toBe(42);
    expect(await page.locator("tr[data-node=n1] [data-state]").textContent()).toBe("alive");
    await shot("dead-node");
    expect(pageErrors).toEqual([]);
  });
});
