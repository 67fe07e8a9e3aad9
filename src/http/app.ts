// The root Hono app of the HTTPS listener: pages, /new, discovery files, /mxdeliv and the admin
// sub-app. Plain HTTP only redirects here (httpsRedirectApp); /metrics lives on its own listener
// (createMetricsApp).

import { Hono } from "hono";
import type { Context } from "hono";
import type { HttpDeps, MetricsAppDeps } from "./backend.ts";
import { createErrorHandler, notFound } from "./errors.ts";
import { newAccountRoutes } from "./new_account.ts";
import { discoveryRoutes } from "./autoconfig.ts";
import { mxdelivRoutes } from "./mxdeliv.ts";
import { infoPage, landingPage, privacyPage } from "./pages/pages.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/mod.ts";

const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    const type = c.res.headers.get("content-type") ?? "";
    if (type.startsWith("text/html") && !c.res.headers.has("content-security-policy")) {
      c.header("content-security-policy", PAGE_CSP);
    }
  });

  // ACME HTTP-01 (RFC 8555 §8.3): port 80 answers it; here too, for a CA that followed a redirect.
  app.get("/.well-known/acme-challenge/:token", (c) => {
    const answer = deps.acmeChallenge?.(c.req.param("token")) ?? null;
    return answer === null ? c.text("Not found", 404) : c.text(answer);
  });
  app.route("/", newAccountRoutes(deps));
  app.route("/", discoveryRoutes(deps.config));
  app.route(
    "/",
    mxdelivRoutes({
      handler: deps.mxdeliv,
      maxMessageBytes: deps.config.limits.maxMessageBytes,
      maxRecipients: deps.config.limits.maxRecipients,
    }),
  );

  const page = (render: () => string | Promise<string>) => async (c: Context) => {
    // The landing page may carry fresh credentials: never cache it.
    c.header("cache-control", "no-store");
    return c.html(await render());
  };
  for (const path of ["/", "/index.html"]) {
    app.get(path, page(() => landingPage(deps.config, deps.settings, deps.accounts)));
  }
  for (const path of ["/info", "/info.html"]) app.get(path, page(() => infoPage(deps.config)));
  for (const path of ["/privacy", "/privacy.html"]) {
    app.get(
      path,
      page(() => privacyPage(deps.config, deps.settings)),
    );
  }
  app.get("/robots.txt", (c) => c.text("User-agent: *\nDisallow: /\n"));

  for (const r of deps.routes ?? []) app.route("/", r);
  if (deps.admin) app.route("/", deps.admin);
  app.notFound(notFound);
  app.onError(createErrorHandler(deps.log));
  return app;
}

/** The /metrics app for the separate metrics listener (keep it off the public address). */
export function createMetricsApp(deps: MetricsAppDeps): Hono {
  const app = new Hono();
  app.get(
    "/metrics",
    async (c) => c.body(await deps.metricsText(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }),
  );
  app.notFound(notFound);
  app.onError(createErrorHandler());
  return app;
}
