// /settings: the typed list of dynamic settings and changes to one of them. Secret values are
// never returned.

import { Hono } from "hono";
import { RelayError } from "../../errors.ts";
import type { AdminDeps, AdminSettingInfo } from "../backend.ts";
import { badRequest, readJson } from "../params.ts";

const SECRET_NAME = /secret|password|token/i;

export function settingJson(s: AdminSettingInfo) {
  const secret = s.secret === true || SECRET_NAME.test(s.key);
  return {
    key: s.key,
    value: secret ? null : s.value,
    default: secret ? null : s.default,
    doc: s.doc,
    kind: s.kind,
    ...(s.values ? { values: [...s.values] } : {}),
    ...(secret ? { secret: true } : {}),
  };
}

export function settingsRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const { settings } = deps;
  const find = (key: string) => {
    const s = settings.all().find((x) => x.key === key);
    if (!s) throw new RelayError("not_found", `Unknown setting "${key}"`);
    return s;
  };

  app.get("/settings", (c) => c.json({ items: settings.all().map(settingJson) }));

  app.put("/settings/:key", async (c) => {
    const key = c.req.param("key");
    find(key);
    const body = await readJson(c);
    if (!("value" in body)) throw badRequest('expected "value" (null resets to the default)');
    const v = body.value;
    if (v !== null && typeof v !== "string" && typeof v !== "boolean" && typeof v !== "number") {
      throw badRequest('"value" must be a string, boolean, number or null');
    }
    await settings.set(key, v === null ? null : String(v));
    return c.json(settingJson(find(key)));
  });
  return app;
}
