import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import {
  ADMIN_TOKEN,
  adminServices,
  client,
  DEFAULT_QUOTA,
  fromAddress,
} from "./testdata/services.ts";
import { isRelayError } from "../errors.ts";
import { createLogger } from "../log/mod.ts";

Deno.test("POST /accounts creates accounts from generated or given credentials", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  let res = await call("POST", "/accounts");
  assert.equal(res.status, 201);
  const generated = await res.json();
  assert.match(generated.email, /@example\.org$/);
  assert.equal(typeof generated.password, "string");
  assert.equal(
    (await t.accounts.authenticate(generated.email, generated.password)).address,
    generated.email,
  );

  res = await call("POST", "/accounts", { email: "Alice", password: "secret-pass-1" });
  assert.equal(res.status, 201);
  const alice = await res.json();
  assert.deepEqual(alice, {
    email: "alice@example.org",
    blocked: false,
    created_at: t.clock.now,
    last_login_at: null,
    used_bytes: 0,
    quota_bytes: DEFAULT_QUOTA,
    quota_is_default: true,
  });
});

Deno.test("POST /accounts answers 409 for an existing account, 422 for policy, 400 for bad JSON", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  assert.equal(
    (await call("POST", "/accounts", { email: "bob@example.org", password: "secret-pass-1" }))
      .status,
    201,
  );
  let res = await call("POST", "/accounts", {
    email: "bob@example.org",
    password: "secret-pass-2",
  });
  assert.equal(res.status, 409);
  assert.match((await res.json()).error, /already exists/);
  res = await call("POST", "/accounts", { email: "carol@example.org", password: "short" });
  assert.equal(res.status, 422);
  assert.match((await res.json()).error, /at least 9 characters/);
  res = await call("POST", "/accounts", { email: "dave@elsewhere.org", password: "secret-pass-1" });
  assert.equal(res.status, 422);
  res = await call("POST", "/accounts", "{oops");
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: "invalid JSON body" });
  res = await call("POST", "/accounts", [1, 2]);
  assert.equal(res.status, 400);
  res = await call("POST", "/accounts", { email: 42 });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: '"email" must be a string' });
});

Deno.test("GET /accounts searches and pages, with quota use and last login", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  for (const name of ["anna", "anton", "bert", "berta", "carl"]) {
    await t.accounts.create(`${name}@example.org`, "secret-pass-1");
  }
  t.clock.now += 5000;
  await t.accounts.authenticate("bert@example.org", "secret-pass-1");
  let res = await call("GET", "/accounts?search=ber&limit=10");
  let page = await res.json();
  assert.equal(page.total, 2);
  assert.deepEqual(page.items.map((a: { email: string }) => a.email), [
    "bert@example.org",
    "berta@example.org",
  ]);
  assert.equal(page.items[0].last_login_at, t.clock.now);
  assert.equal(page.items[1].last_login_at, null);
  res = await call("GET", "/accounts?offset=2&limit=2");
  page = await res.json();
  assert.deepEqual(page.items.map((a: { email: string }) => a.email), [
    "bert@example.org",
    "berta@example.org",
  ]);
  assert.equal(page.total, 5);
  assert.equal(page.offset, 2);
  for (const q of ["limit=0", "limit=501", "offset=-1", "limit=abc"]) {
    res = await call("GET", `/accounts?${q}`);
    assert.equal(res.status, 400, q);
    await res.body?.cancel();
  }
});

Deno.test("account actions: show, block, unblock, change password, delete, 404s", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  await t.accounts.create("eve@example.org", "secret-pass-1");
  let res = await call("GET", "/accounts/eve@example.org");
  assert.equal((await res.json()).blocked, false);

  res = await call("POST", "/accounts/eve@example.org/block");
  assert.equal(res.status, 200);
  assert.equal((await res.json()).blocked, true);
  await assert.rejects(
    t.accounts.authenticate("eve@example.org", "secret-pass-1"),
    (e) => isRelayError(e, "account_blocked"),
  );
  res = await call("POST", "/accounts/eve/unblock");
  assert.equal((await res.json()).blocked, false);

  res = await call("PUT", "/accounts/eve@example.org/password", { password: "another-pass-2" });
  assert.deepEqual(await res.json(), { email: "eve@example.org", password_changed: true });
  await t.accounts.authenticate("eve@example.org", "another-pass-2");
  res = await call("PUT", "/accounts/eve@example.org/password", { password: "short" });
  assert.equal(res.status, 422);
  await res.body?.cancel();
  res = await call("PUT", "/accounts/eve@example.org/password", {});
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: '"password" is required' });

  res = await call("DELETE", "/accounts/eve@example.org");
  assert.deepEqual(await res.json(), { deleted: "eve@example.org" });
  for (
    const [method, path] of [
      ["GET", "/accounts/eve@example.org"],
      ["DELETE", "/accounts/eve@example.org"],
      ["POST", "/accounts/eve@example.org/block"],
      ["PUT", "/accounts/eve@example.org/password"],
    ]
  ) {
    res = await call(method, path, method === "PUT" ? { password: "another-pass-3" } : undefined);
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.deepEqual(await res.json(), { error: "No account eve@example.org" });
  }
});

Deno.test("a request body the client cuts off is a 400, not a logged 500, and changes nothing", async () => {
  const lines: string[] = [];
  using t = await adminServices({ log: createLogger("info", { write: (l) => lines.push(l) }) });
  const app = createAdminApp(t.deps);
  const cut = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"email": "cut", "password": "secret-'));
      },
      pull(controller) {
        controller.error(new Error("request aborted by the client"));
      },
    });
  const res = await app.request("/api/admin/accounts", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: cut(),
    // @ts-ignore: required by the fetch spec for stream bodies
    duplex: "half",
  }, fromAddress());
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { error: "request body was cut off" });
  assert.deepEqual(lines, []);
  assert.equal(await t.accounts.getAccount("cut@example.org"), null);
});
