// /federation: the policy (blocklist or allowlist mode, allowed domains) and per-domain traffic.

import { Hono } from "hono";
import type { AdminDeps } from "../backend.ts";
import { badRequest, optionalString, readJson } from "../params.ts";

function allowlistValue(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === "string") return raw;
  if (Array.isArray(raw) && raw.every((d) => typeof d === "string")) return raw.join(",");
  throw badRequest('"allowlist" must be a list of domains or a comma-separated string');
}

export function federationRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const { settings, store } = deps;
  const policy = () => ({
    mode: settings.get("federation_mode"),
    allowlist: settings.get("federation_allowlist").split(",").filter(Boolean),
  });

  app.get("/federation", async (c) => {
    const stats = await store.listFederationStats();
    return c.json({
      ...policy(),
      domains: stats.map((s) => ({
        domain: s.domain,
        sent: s.sent,
        received: s.received,
        failures: s.failures,
        last_error: s.lastError,
        last_at: s.lastAt,
      })),
    });
  });

  app.put("/federation", async (c) => {
    const body = await readJson(c);
    const mode = optionalString(body, "mode", 20);
    const allowlist = allowlistValue(body.allowlist);
    if (mode === undefined && allowlist === undefined) {
      throw badRequest('expected "mode" and/or "allowlist"');
    }
    // Validate both before writing either, so a bad request changes nothing.
    if (mode !== undefined && !["blocklist", "allowlist"].includes(mode)) {
      throw badRequest(`"mode" must be blocklist or allowlist, got "${mode}"`);
    }
    if (allowlist !== undefined) {
      for (const d of allowlist.split(/[,\s]+/).filter(Boolean)) {
        if (!/^(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?)$/i.test(d)) {
          throw badRequest(`"allowlist" contains an invalid domain: "${d}"`);
        }
      }
      await settings.set("federation_allowlist", allowlist);
    }
    if (mode !== undefined) await settings.set("federation_mode", mode);
    return c.json(policy());
  });
  return app;
}
