// The admin sub-app: JSON REST API under /api/admin (bearer token) and the web admin under /admin.
// Mount it on the root app with app.route("/", createAdminApp(deps)).

import { Hono } from "hono";
import { createErrorHandler, jsonError, notFound } from "../http/mod.ts";
import type { AdminDeps } from "./backend.ts";
import { requireAdmin } from "./require_admin.ts";
import { createSpaApp } from "./spa.ts";
import { accountRoutes } from "./routes/accounts.ts";
import { blocklistRoutes } from "./routes/blocklist.ts";
import { federationRoutes } from "./routes/federation.ts";
import { queueRoutes } from "./routes/queue.ts";
import { registrationRoutes } from "./routes/registration.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { statusRoutes } from "./routes/status.ts";

export const ADMIN_API_BASE = "/api/admin";

/** The API alone, with paths relative to /api/admin. */
export function createAdminApi(deps: AdminDeps): Hono {
  const api = new Hono();
  api.use(async (c, next) => {
    await next();
    c.header("cache-control", "no-store");
  });
  api.use(
    requireAdmin({ token: deps.adminToken, throttle: deps.loginThrottle, sleep: deps.sleep }),
  );
  for (
    const routes of [
      statusRoutes,
      accountRoutes,
      registrationRoutes,
      blocklistRoutes,
      federationRoutes,
      queueRoutes,
      settingsRoutes,
    ]
  ) {
    api.route("/", routes(deps));
  }
  api.notFound((c) => jsonError(c, 404, "not found"));
  api.onError(createErrorHandler(deps.log));
  return api;
}

/** API at /api/admin plus the SPA at /admin, ready to mount at the root. */
export function createAdminApp(deps: AdminDeps): Hono {
  const app = new Hono();
  app.route(ADMIN_API_BASE, createAdminApi(deps));
  app.route("/", createSpaApp());
  app.notFound(notFound);
  app.onError(createErrorHandler(deps.log));
  return app;
}
