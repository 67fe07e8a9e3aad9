// Serves the embedded admin SPA: /admin and /admin/* answer index.html, hashed assets are cached
// for good. The assets come from web_assets.gen.ts (scripts/build_web.ts), so no files are read.

import { Hono } from "hono";
import { WEB_ASSETS } from "./web_assets.gen.ts";

export interface WebAssets {
  readonly hash: string;
  readonly html: string;
  readonly js: string;
  readonly css: string;
}

export const SPA_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function createSpaApp(assets: WebAssets = WEB_ASSETS): Hono {
  const app = new Hono();
  const asset = (body: string, type: string) => () =>
    new Response(body, {
      headers: {
        "content-type": type,
        "cache-control": "public, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
      },
    });
  app.get(
    `/admin/assets/app-${assets.hash}.js`,
    asset(assets.js, "text/javascript; charset=utf-8"),
  );
  app.get(`/admin/assets/app-${assets.hash}.css`, asset(assets.css, "text/css; charset=utf-8"));
  // Unknown or outdated assets fall through to the JSON/HTML 404 of the root app.
  app.get("/admin/assets/*", (c) => c.notFound());
  const index = () =>
    new Response(assets.html, {
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
