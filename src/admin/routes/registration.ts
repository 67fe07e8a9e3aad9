// /registration (mode and JIT) and /tokens (registration tokens for registration=token).

import { Hono } from "hono";
import { RelayError } from "../../errors.ts";
import type { AdminDeps } from "../backend.ts";
import { badRequest, booleanParam, numberParam, optionalString, readJson } from "../params.ts";
import { createRegistrationToken, tokenJson } from "../registration_tokens.ts";

export function registrationRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const now = deps.now ?? Date.now;
  const { settings, store } = deps;
  const current = () => ({
    registration: settings.get("registration"),
    jit_enabled: settings.get("jit_enabled") === "true",
  });

  app.get("/registration", (c) => c.json(current()));

  app.put("/registration", async (c) => {
    const body = await readJson(c);
    const mode = optionalString(body, "registration", 20);
    const jit = booleanParam(body.jit_enabled, "jit_enabled");
    if (mode === undefined && jit === undefined) {
      throw badRequest('expected "registration" and/or "jit_enabled"');
    }
    if (mode !== undefined && !["open", "closed", "token"].includes(mode)) {
      throw badRequest(`"registration" must be open, closed or token, got "${mode}"`);
    }
    if (mode !== undefined) await settings.set("registration", mode);
    if (jit !== undefined) await settings.set("jit_enabled", String(jit));
    return c.json(current());
  });

  app.get("/tokens", async (c) => {
    const t = now();
    return c.json({ items: (await store.listTokens()).map((x) => tokenJson(x, t)) });
  });

  app.post("/tokens", async (c) => {
    const body = await readJson(c);
    const t = now();
    const token = await createRegistrationToken(store, {
      maxUses: numberParam(body.max_uses, "max_uses", { min: 1, max: 1_000_000 }),
      expiresInHours: numberParam(body.expires_in_hours, "expires_in_hours", {
        min: 0.01,
        max: 24 * 3650,
        integer: false,
      }),
      comment: optionalString(body, "comment", 200),
      token: optionalString(body, "token", 100),
    }, t);
    return c.json(tokenJson(token, t), 201);
  });

  app.delete("/tokens/:token", async (c) => {
    const token = c.req.param("token");
    if (!(await store.deleteToken(token))) throw new RelayError("not_found", `No token "${token}"`);
    return c.json({ deleted: token });
  });
  return app;
}
