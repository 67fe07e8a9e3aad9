import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import { tokensMatch } from "./require_admin.ts";
import { ADMIN_TOKEN, adminServices, client } from "./testdata/services.ts";

Deno.test("tokensMatch() compares exactly and never matches an empty expected token", () => {
  assert.equal(tokensMatch("abc", "abc"), true);
  assert.equal(tokensMatch("abd", "abc"), false);
  assert.equal(tokensMatch("abc ", "abc"), false);
  assert.equal(tokensMatch("", ""), false);
});

Deno.test("admin API answers 401 without or with a wrong bearer token, 200 with the right one", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  let res = await call("GET", "/status", undefined, "");
  assert.equal(res.status, 401);
  assert.match(res.headers.get("www-authenticate")!, /^Bearer/);
  assert.deepEqual(await res.json(), { error: "missing admin token" });
  res = await call("GET", "/status", undefined, "wrong-token");
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { error: "invalid admin token" });
  res = await call("GET", "/status");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  await res.body?.cancel();
});

Deno.test("admin API slows repeated failures down, then answers 429 until the window ends", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  for (let i = 0; i < 10; i++) {
    const res = await call("GET", "/status", undefined, `guess-${i}`, "203.0.113.1");
    assert.equal(res.status, 401);
    await res.body?.cancel();
  }
  // Three free failures, then growing delays.
  assert.deepEqual(t.sleeps, [250, 500, 1000, 2000, 2000, 2000, 2000]);
  let res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.1");
  assert.equal(res.status, 429, "even the right token waits out the lockout");
  assert.equal(res.headers.get("retry-after"), "60");
  assert.deepEqual(await res.json(), { error: "too many failed logins; try again later" });

  res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.2");
  assert.equal(res.status, 200, "other addresses are not affected");
  await res.body?.cancel();

  t.clock.now += 61_000;
  res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.1");
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("a successful login clears the failure count of the address", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3; i++) {
      await (await call("GET", "/status", undefined, "nope")).body?.cancel();
    }
    await (await call("GET", "/status")).body?.cancel();
  }
  assert.deepEqual(t.sleeps, [], "never more than three failures in a row");
});

Deno.test("admin API is disabled (403) while the token is empty", async () => {
  using t = await adminServices({ adminToken: () => "" });
  const res = await client(createAdminApp(t.deps))("GET", "/status", undefined, "");
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { error: "admin API is disabled" });
});
