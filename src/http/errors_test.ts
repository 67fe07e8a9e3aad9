import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { RelayError } from "../errors.ts";
import type { ErrorCode } from "../errors.ts";
import { createLogger } from "../log/mod.ts";
import { createErrorHandler, isApiPath, STATUS_FOR } from "./errors.ts";

function appThrowing(err: unknown, lines: string[] = []) {
  const app = new Hono();
  app.get("/x", () => {
    throw err;
  });
  app.onError(createErrorHandler(createLogger("info", { write: (l) => lines.push(l) })));
  return app;
}

Deno.test("onError maps every RelayError code to its status with a JSON error", async () => {
  for (const [code, status] of Object.entries(STATUS_FOR) as [ErrorCode, number][]) {
    const res = await appThrowing(new RelayError(code, `detail for ${code}`)).request("/x");
    assert.equal(res.status, status, code);
    const body = await res.json();
    // Server-side failures never leak their detail to the client.
    assert.equal(
      body.error,
      status >= 500
        ? (status === 503 ? "service unavailable" : "internal error")
        : `detail for ${code}`,
    );
  }
  assert.equal(STATUS_FOR.account_exists, 409);
  assert.equal(STATUS_FOR.invalid_credentials_policy, 422);
  assert.equal(STATUS_FOR.rate_limited, 429);
});

Deno.test("onError answers unknown errors with a generic 500 and logs them", async () => {
  const lines: string[] = [];
  const res = await appThrowing(new TypeError("secret internals"), lines).request("/x");
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "internal error" });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /secret internals/);
});

Deno.test("onError keeps the status and message of an HTTPException", async () => {
  const lines: string[] = [];
  const res = await appThrowing(new HTTPException(400, { message: "invalid JSON body" }), lines)
    .request("/x");
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: "invalid JSON body" });
  assert.equal(lines.length, 0, "client errors are not logged as failures");
});

Deno.test("isApiPath() tells API paths from pages", () => {
  for (const p of ["/api/admin/status", "/new", "/cgi-bin/newemail.py", "/mxdeliv", "/metrics"]) {
    assert.equal(isApiPath(p), true, p);
  }
  for (const p of ["/", "/info", "/newsletter", "/admin", "/apix"]) {
    assert.equal(isApiPath(p), false, p);
  }
});
