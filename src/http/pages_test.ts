import assert from "node:assert/strict";
import jsqr from "jsqr";
import { chromium, type Page } from "playwright-core";
import { createHttpApp } from "./app.ts";
import { startHttpServer } from "./mod.ts";
import { requireTool, which } from "../../tests/support/tools.ts";
import { httpServices, IP_SELF_SIGNED, TRUSTED } from "./testdata/services.ts";

function svgOf(html: string): string {
  const m = /<svg[\s\S]*?<\/svg>/.exec(html);
  assert.ok(m, "page has an inline SVG");
  return m[0];
}

Deno.test("landing page shows a DCACCOUNT invite QR code for a trusted certificate", async () => {
  using t = await httpServices();
  const res = await createHttpApp(t.deps).request("/");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/html/);
  assert.match(res.headers.get("content-security-policy")!, /default-src 'none'/);
  assert.equal(res.headers.get("cache-control"), "no-store");
  const html = await res.text();
  assert.match(html, /<meta name="viewport"/);
  assert.ok(html.includes('href="dcaccount:https://example.org/new"'));
  assert.ok(svgOf(html).startsWith('<svg class="qr"'));
});

/**
 * What the page's QR code says, read the way a phone reads it: Chromium renders the page (served
 * over HTTP with its real headers), the code is photographed, and jsQR (an independent decoder)
 * reads the picture. Chromium also turns its PNG back into pixels, on a blank page.
 */
async function scanQr(page: Page, blank: Page, url: string): Promise<string | null> {
  await page.goto(url);
  const png = await page.locator("svg.qr").screenshot();
  const { width, height, data } = await blank.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    // A white quiet zone around the code, as on paper.
    const pad = 32;
    const canvas = document.createElement("canvas");
    canvas.width = img.width + 2 * pad;
    canvas.height = img.height + 2 * pad;
    const ctx = canvas.getContext("2d")!;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, pad, pad);
    const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
    return { width: pixels.width, height: pixels.height, data: Array.from(pixels.data) };
  }, png.toString("base64"));
  return jsQR(new Uint8ClampedArray(data), width, height)?.data ?? null;
}

// jsqr is CommonJS: its default import is the decoder function itself.
const jsQR = jsqr as unknown as (
  data: Uint8ClampedArray,
  width: number,
  height: number,
) => { data: string } | null;

const chromiumNeed = requireTool("chromium");
Deno.test({
  name: chromiumNeed.title(
    "the landing page's QR code, photographed in Chromium, reads as its link",
  ),
  ignore: chromiumNeed.ignore,
  async fn() {
    using trusted = await httpServices();
    using ip = await httpServices(IP_SELF_SIGNED);
    await using a = await startHttpServer({
      address: "127.0.0.1:0",
      app: createHttpApp(trusted.deps),
    });
    await using b = await startHttpServer({ address: "127.0.0.1:0", app: createHttpApp(ip.deps) });
    const browser = await chromium.launch({
      executablePath: which("chromium")!,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    try {
      const page = await browser.newPage();
      const blank = await browser.newPage();
      assert.equal(
        await scanQr(page, blank, `http://127.0.0.1:${a.port}/`),
        "DCACCOUNT:https://example.org/new",
      );
      // A self-signed IP relay shows a new account on every visit: the code is that visit's link.
      for (let i = 0; i < 2; i++) {
        const read = await scanQr(page, blank, `http://127.0.0.1:${b.port}/`);
        const href = await page.locator("a.button").getAttribute("href");
        assert.match(href!, /^dclogin:/);
        assert.equal(read, href);
      }
    } finally {
      await browser.close();
    }
  },
});

Deno.test("landing page of a self-signed IP relay shows a fresh dclogin link on every visit", async () => {
  using t = await httpServices(IP_SELF_SIGNED);
  const app = createHttpApp(t.deps);
  const links = [];
  for (let i = 0; i < 2; i++) {
    const html = await (await app.request("/")).text();
    const m = /href="(dclogin:[^"]+)"/.exec(html);
    assert.ok(m, "dclogin link present");
    const link = m[1].replaceAll("&amp;", "&");
    assert.match(
      link,
      /^dclogin:[a-z0-9]{9}@\[192\.0\.2\.1\]\?p=[A-Za-z0-9]{12}&v=1&ih=192\.0\.2\.1&ip=2993&is=ssl&sh=192\.0\.2\.1&sp=2465&ss=ssl&ic=3$/,
    );
    assert.ok(svgOf(html).startsWith('<svg class="qr"'));
    links.push(link);
  }
  assert.notEqual(links[0], links[1]);
});

Deno.test("landing page says so when registration is closed or needs a token", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  await t.settings.set("registration", "closed");
  let html = await (await app.request("/")).text();
  assert.match(html, /Registration on example\.org is closed/);
  assert.ok(!html.includes("<svg"));
  await t.settings.set("registration", "token");
  html = await (await app.request("/")).text();
  assert.match(html, /need an invitation/);
  assert.ok(!html.includes("<svg"));
});

Deno.test("/info shows the configured limits", async () => {
  using t = await httpServices({
    ...TRUSTED,
    limits: {
      ...TRUSTED.limits,
      sendPerMinute: 42,
      maxMailboxBytes: 100 * 1024 * 1024,
      deleteMailsAfterDays: 11,
    },
  });
  const html = await (await createHttpApp(t.deps).request("/info")).text();
  assert.match(html, /up to 42 messages per minute/);
  assert.match(html, /up to 100 MiB of messages/);
  assert.match(html, /at the latest 11 days after arriving/);
  assert.match(html, /at most 30 MiB large/);
  assert.match(html, /90 days after its last login/);
});

Deno.test("/privacy shows the admin_contact setting, escaped", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  let html = await (await app.request("/privacy")).text();
  assert.match(html, /has not published a contact address/);
  await t.settings.set("admin_contact", "<ops@example.org>");
  html = await (await app.request("/privacy")).text();
  assert.ok(html.includes("reached at &lt;ops@example.org&gt;"));
});

Deno.test("robots.txt disallows everything; unknown paths get HTML or JSON 404s", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  const robots = await app.request("/robots.txt");
  assert.equal(await robots.text(), "User-agent: *\nDisallow: /\n");
  const page = await app.request("/nope");
  assert.equal(page.status, 404);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  const api = await app.request("/api/nope");
  assert.equal(api.status, 404);
  assert.deepEqual(await api.json(), { error: "not found" });
});
