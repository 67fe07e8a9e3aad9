// Serves the embedded admin SPA: /admin and /admin/* answer index.html, hashed assets are cached
// for good. The assets come from web_assets.gen.ts (scripts/build_web.ts), so no files are read;
// that module loads at the first request for them, so a relay whose admin is never opened does not
// hold it (about 0.5 MB of an idle process).

import { Hono } from "hono";

export interface WebAssets {
  readonly hash: string;
  readonly html: string;
  readonly js: string;
  readonly css: string;
}

export const SPA_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const loadBundled = () => import("./web_assets.gen.ts").then((m) => m.WEB_ASSETS);

export function createSpaApp(given?: WebAssets): Hono {
  let loading: Promise<WebAssets> | undefined;
  const assets = () => given ? Promise.resolve(given) : (loading ??= loadBundled());
  const app = new Hono();
  const asset = (body: string, type: string) =>
    new Response(body, {
      headers: {
        "content-type": type,
        "cache-control": "public, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
      },
    });
  // Unknown or outdated assets fall through to the JSON/HTML 404 of the root app.
  app.get("/admin/assets/:file", async (c) => {
    const a = await assets();
    const file = c.req.param("file");
    if (file === `app-${a.hash}.js`) return asset(a.js, "text/javascript; charset=utf-8");
    if (file === `app-${a.hash}.css`) return asset(a.css, "text/css; charset=utf-8");
    return c.notFound();
  });
  app.get("/admin/assets/*", (c) => c.notFound());
  const index = async () =>
    new Response((await assets()).html, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-cache",
        "content-security-policy": SPA_CSP,
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
      },
    });
  app.get("/admin", index);
  app.get("/admin/*", index);
  return app;
}
