// /accounts: list and search, create (given or generated credentials), show, delete, block,
// unblock, change password. The rules live in the accounts service; this maps HTTP to it.

import { Hono } from "hono";
import { RelayError } from "../../errors.ts";
import type { AccountRecord } from "../../store/types.ts";
import type { AdminDeps } from "../backend.ts";
import { numberParam, optionalString, readJson, requiredString } from "../params.ts";

export function accountJson(a: AccountRecord, defaultQuotaBytes: number) {
  return {
    email: a.address,
    blocked: a.blocked,
    created_at: a.createdAt,
    last_login_at: a.lastLoginAt,
    used_bytes: a.usedBytes,
    quota_bytes: a.quotaBytes ?? defaultQuotaBytes,
    quota_is_default: a.quotaBytes === null,
  };
}

export function accountRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const { accounts } = deps;
  const view = (a: AccountRecord) => accountJson(a, deps.defaultQuotaBytes);
  /** Accepts "name" as shorthand for "name@<our domain>". */
  const address = (raw: string) => {
    const a = raw.trim().toLowerCase();
    return a.includes("@") ? a : `${a}@${accounts.domain}`;
  };
  const mustGet = async (raw: string) => {
    const a = await accounts.getAccount(address(raw));
    if (!a) throw new RelayError("account_not_found", `No account ${address(raw)}`);
    return a;
  };

  app.get("/accounts", async (c) => {
    const offset = numberParam(c.req.query("offset"), "offset", { min: 0, max: 1e9, fallback: 0 })!;
    const limit = numberParam(c.req.query("limit"), "limit", { min: 1, max: 500, fallback: 50 })!;
    const search = c.req.query("search")?.trim() || undefined;
    const page = await accounts.list({ search, offset, limit });
    return c.json({ items: page.items.map(view), total: page.total, offset, limit });
  });

  app.post("/accounts", async (c) => {
    const body = await readJson(c);
    const given = optionalString(body, "email", 320);
    const givenPassword = optionalString(body, "password", 1000);
    const generated = accounts.generateCredentials();
    const email = given?.trim() ? address(given) : generated.email;
    const password = givenPassword ?? generated.password;
    const account = await accounts.create(email, password);
    return c.json({ ...view(account), ...(givenPassword === undefined ? { password } : {}) }, 201);
  });

  app.get("/accounts/:email", async (c) => c.json(view(await mustGet(c.req.param("email")))));

  app.delete("/accounts/:email", async (c) => {
    const a = await mustGet(c.req.param("email"));
    await accounts.delete(a.address);
    return c.json({ deleted: a.address });
  });

  for (const action of ["block", "unblock"] as const) {
    app.post(`/accounts/:email/${action}`, async (c) => {
      const a = await mustGet(c.req.param("email"));
      return c.json(view(await accounts.setBlocked(a.address, action === "block")));
    });
  }

  app.put("/accounts/:email/password", async (c) => {
    const a = await mustGet(c.req.param("email"));
    const password = requiredString(await readJson(c), "password");
    await accounts.setPassword(a.address, password);
    return c.json({ email: a.address, password_changed: true });
  });
  return app;
}
