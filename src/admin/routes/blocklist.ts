// /blocklist: addresses ("user@domain") and whole domains ("@domain") that may not register or
// deliver. Entries are stored lowercased.

import { Hono } from "hono";
import type { Context } from "hono";
import { RelayError } from "../../errors.ts";
import type { AdminDeps } from "../backend.ts";
import { badRequest, optionalString, readJson, requiredString } from "../params.ts";

const ENTRY =
  /^([a-z0-9._+-]+@|@)?(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*)$/;

/** "user@domain", "@domain" or a bare domain (stored as "@domain"); throws a 400 otherwise. */
export function normalizeBlockEntry(raw: string): string {
  const e = raw.trim().toLowerCase();
  if (!ENTRY.test(e)) {
    throw badRequest(`"entry" must be an address, "@domain" or a domain, got "${raw}"`);
  }
  return e.includes("@") ? e : `@${e}`;
}

export function blocklistRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const now = deps.now ?? Date.now;
  const { store } = deps;

  app.get("/blocklist", async (c) => {
    const items = await store.listBlocked();
    return c.json({
      items: items.map((b) => ({ entry: b.entry, reason: b.reason, created_at: b.createdAt })),
    });
  });

  app.post("/blocklist", async (c) => {
    const body = await readJson(c);
    const entry = normalizeBlockEntry(requiredString(body, "entry", 320));
    const reason = optionalString(body, "reason", 200) ?? "blocked by admin";
    const at = now();
    // One check-and-insert in the store: of concurrent requests for one entry, one adds it.
    if (!(await store.addBlocked(entry, reason, at))) {
      throw new RelayError("conflict", `"${entry}" is already blocked`);
    }
    return c.json({ entry, reason, created_at: at }, 201);
  });

  const remove = async (c: Context, raw: string) => {
    const entry = normalizeBlockEntry(raw);
    if (!(await store.removeBlocked(entry))) {
      throw new RelayError("not_found", `"${entry}" is not blocked`);
    }
    return c.json({ deleted: entry });
  };
  app.delete("/blocklist/:entry", (c) => remove(c, c.req.param("entry")));
  app.delete("/blocklist", async (c) => remove(c, requiredString(await readJson(c), "entry", 320)));
  return app;
}
