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

Deno.test("admin API throttles guessing per address and as one account; 429 past the longest wait", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  // The right token from here first: this address stays trusted.
  await (await call("GET", "/status", undefined, ADMIN_TOKEN, "198.51.100.1")).body?.cancel();
  const statuses: number[] = [];
  // The test clock stands still, so these attempts behave like parallel ones.
  for (let i = 0; i < 20; i++) {
    const res = await call("GET", "/status", undefined, `guess-${i}`, "203.0.113.1");
    statuses.push(res.status);
    if (res.status === 429) {
      assert.match(res.headers.get("retry-after")!, /^[1-9]\d*$/);
      assert.deepEqual(await res.json(), { error: "too many failed logins; try again later" });
    } else await res.body?.cancel();
  }
  // Five free failures; then each waits for the slot after the previous one (250 ms, then 500 ms
  // more, ...) until the queue would exceed 30 s: 429.
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
  assert.deepEqual(t.sleeps.slice(0, 3), [250, 500, 1000]);
  assert.ok(statuses.includes(429), `${statuses}`);
  assert.ok(!statuses.includes(200));

  let res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.1");
  assert.equal(res.status, 429, "the guessing address waits even with the right token");
  await res.body?.cancel();
  res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.2");
  assert.equal(res.status, 429, "a fresh address too: the token itself is under attack");
  await res.body?.cancel();
  const sleeps = t.sleeps.length;
  res = await call("GET", "/status", undefined, ADMIN_TOKEN, "198.51.100.1");
  assert.equal(res.status, 200, "the admin's known address is not held up");
  assert.equal(t.sleeps.length, sleeps);
  await res.body?.cancel();

  t.clock.now += 11 * 60_000;
  res = await call("GET", "/status", undefined, ADMIN_TOKEN, "203.0.113.2");
  assert.equal(res.status, 200, "the window has ended");
  await res.body?.cancel();
});

Deno.test("a successful admin login does not reset the address's failures", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3; i++) {
      await (await call("GET", "/status", undefined, "nope")).body?.cancel();
    }
    await (await call("GET", "/status")).body?.cancel();
  }
  assert.ok(t.sleeps.length > 0, "nine failures from one address are slowed down");
});

Deno.test("admin API is disabled (403) while the token is empty", async () => {
  using t = await adminServices({ adminToken: () => "" });
  const res = await client(createAdminApp(t.deps))("GET", "/status", undefined, "");
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { error: "admin API is disabled" });
});
