// Drives the embedded web admin in headless Chromium against the real app on Deno.serve: login
// errors, login, dashboard, create and block an account, every section. Screenshots: a temp dir.

import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import type { Page } from "playwright-core";
import { createHttpApp, startHttpServer } from "../http/mod.ts";
import { httpServices } from "../http/testdata/services.ts";
import { createAdminApp } from "./app.ts";
import { ADMIN_TOKEN, adminServices } from "./testdata/services.ts";
import type { AdminOutbound } from "./backend.ts";
import { requireTool, which } from "../../tests/support/tools.ts";

const chromiumNeed = requireTool("chromium");

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/** Some traffic over the last half hour, so the dashboard chart has a shape. */
function seedTraffic(t: Awaited<ReturnType<typeof adminServices>>, base: number) {
  for (let i = 0; i < 30; i++) {
    t.clock.now = base - (29 - i) * 60_000;
    const n = Math.round(6 + 5 * Math.sin(i / 4) + (i % 7));
    t.metrics.messagesReceived.inc({ via: "smtp" }, n);
    t.metrics.deliveries.inc({ target: "local", outcome: "delivered" }, Math.max(0, n - 2));
  }
  t.clock.now = base;
  t.metrics.imapConnections.set(14, { listener: "imaps" });
  t.metrics.smtpConnections.set(3, { listener: "submissions" });
  t.metrics.imapIdleSessions.set(11);
  t.metrics.irohClients.set(4, { protocol: "relay" });
  t.metrics.irohClients.set(1, { protocol: "websocket" });
  t.metrics.irohRelayedPackets.inc(undefined, 1234);
  t.metrics.irohRelayedBytes.inc(undefined, 3 * 1024 * 1024);
  t.metrics.irohDropped.inc({ reason: "queue_full" }, 7);
}

async function shot(page: Page, dir: string, name: string): Promise<string> {
  const path = `${dir}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
  return path;
}

Deno.test({
  name: chromiumNeed.title(
    "web admin in Chromium: wrong token, login, dashboard, create and block an account",
  ),
  ignore: chromiumNeed.ignore,
  async fn() {
    const base = Date.now();
    const outbound: AdminOutbound = {
      destinations: () =>
        Promise.resolve([
          {
            domain: "down.example",
            pending: 2,
            deferred: 2,
            oldestAt: base - 3_600_000,
            nextAttemptAt: base + 60_000,
            lastError: "Connection to 192.0.2.1:25 timed out after 15 s",
            state: "backoff" as const,
            concurrency: 1,
            active: 0,
            retryAt: base + 60_000,
          },
          {
            domain: "up.example",
            pending: 1,
            deferred: 0,
            oldestAt: base - 2_000,
            nextAttemptAt: base,
            lastError: null,
            state: "open" as const,
            concurrency: 4,
            active: 1,
            retryAt: null,
          },
        ]),
      retryEntry: () => Promise.resolve(false),
    };
    using a = await adminServices({ outbound }, { startAt: base });
    using h = await httpServices();
    seedTraffic(a, base);
    await a.accounts.create("alice@example.org", "secret-pass-1");
    await a.accounts.create("bob@example.org", "secret-pass-2");
    const app = createHttpApp({ ...h.deps, admin: createAdminApp(a.deps) });
    await using server = await startHttpServer({ address: "127.0.0.1:0", app });
    const url = `http://127.0.0.1:${server.port}/admin`;
    const dir = await Deno.makeTempDir({ prefix: "tern-web-admin-" });

    const browser = await chromium.launch({ executablePath: which("chromium")!, args: ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
      page.on("console", (m) => {
        // The wrong-token attempt logs its 401 response; anything else is a defect.
        if (m.type() === "error" && !m.text().includes("401")) {
          problems.push(`console: ${m.text()}`);
        }
      });
      await page.goto(url);

      await page.fill("input[name=token]", "not-the-token");
      await page.click("button[type=submit]");
      await page.getByText("That admin token is not valid.").waitFor();

      await page.fill("input[name=token]", ADMIN_TOKEN);
      await page.click("button[type=submit]");
      await page.locator("[data-page=dashboard]").waitFor();
      const accounts = page.locator(".stat", { hasText: "Accounts" }).locator(".stat-value");
      assert.equal(await accounts.textContent(), "2");
      await page.locator(".chart svg path.line.in").waitFor();
      const iroh = page.locator("[data-card=iroh]");
      assert.equal(await iroh.locator("code").textContent(), "https://example.org");
      const irohRow = (label: string) =>
        iroh.locator("tr", { hasText: label }).locator("td").textContent();
      assert.equal(await irohRow("Clients connected"), "5");
      assert.equal(await irohRow("Data relayed"), "3.0 MiB");
      assert.equal(await irohRow("Dropped"), "7");
      assert.equal(
        await page.evaluate(() => sessionStorage.getItem("tern-admin-token")),
        ADMIN_TOKEN,
      );
      await shot(page, dir, "dashboard");

      await page.click("nav a[href='#/accounts']");
      await page.locator("#accounts-table").waitFor();
      await page.fill("input[name=email]", "newuser1");
      await page.click("form.inline-form button[type=submit]");
      await page.getByText("Created newuser1@example.org").waitFor();
      const row = page.locator("tr[data-email='newuser1@example.org']");
      await row.waitFor();
      assert.equal((await a.store.getAccount("newuser1@example.org"))?.blocked, false);

      await row.getByRole("button", { name: "Block" }).click();
      await row.locator(".badge", { hasText: "blocked" }).waitFor();
      assert.equal((await a.store.getAccount("newuser1@example.org"))?.blocked, true);
      await shot(page, dir, "accounts");

      // The queue per destination: what waits for each peer and whether it answers.
      await page.click("nav a[href='#/queue']");
      const dest = page.locator("#destinations-table tr[data-domain='down.example']");
      await dest.waitFor();
      assert.match((await dest.textContent())!, /2\s*\(2 deferred\)/);
      assert.match((await dest.textContent())!, /0 of 1 at once/);
      await dest.locator(".badge", { hasText: "not answering" }).waitFor();
      await page.locator("#destinations-table tr[data-domain='up.example']").getByText(
        "answering",
      ).waitFor();

      // Every other section loads without an error state.
      for (const section of ["registration", "queue", "federation", "settings"]) {
        await page.click(`nav a[href='#/${section}']`);
        await page.locator(`[data-page=${section}]`).waitFor();
        await page.locator(".spinner").first().waitFor({ state: "detached" });
        assert.equal(await page.locator(".state.error").count(), 0, section);
        await shot(page, dir, section);
      }

      await page.setViewportSize({ width: 390, height: 844 });
      for (const section of ["accounts", "dashboard"]) {
        await page.click("button.menu-toggle");
        await page.click(`nav a[href='#/${section}']`);
        await page.locator(`[data-page=${section}]`).waitFor();
        await shot(page, dir, `${section}-phone`);
      }

      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  },
});
