import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import { randomToken } from "./registration_tokens.ts";
import { adminServices, client } from "./testdata/services.ts";

Deno.test("GET/PUT /registration reads and changes the mode and JIT", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  assert.deepEqual(await (await call("GET", "/registration")).json(), {
    registration: "open",
    jit_enabled: true,
  });
  let res = await call("PUT", "/registration", { registration: "token", jit_enabled: false });
  assert.deepEqual(await res.json(), { registration: "token", jit_enabled: false });
  assert.equal(t.settings.get("registration"), "token");
  assert.equal(t.settings.get("jit_enabled"), "false");
  res = await call("PUT", "/registration", { registration: "maybe" });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /open, closed or token/);
  res = await call("PUT", "/registration", { jit_enabled: "yes please" });
  assert.equal(res.status, 400);
  await res.body?.cancel();
  res = await call("PUT", "/registration", {});
  assert.equal(res.status, 400);
  await res.body?.cancel();
  assert.equal(t.settings.get("registration"), "token", "failed requests change nothing");
});

Deno.test("tokens: create with defaults or options, list with status, delete", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  let res = await call("POST", "/tokens", {});
  assert.equal(res.status, 201);
  const plain = await res.json();
  assert.match(plain.token, /^[a-z0-9]{24}$/);
  assert.deepEqual({ ...plain, token: "" }, {
    token: "",
    max_uses: 1,
    uses: 0,
    expires_at: null,
    created_at: t.clock.now,
    comment: "",
    status: "active",
  });
  res = await call("POST", "/tokens", {
    max_uses: 3,
    expires_in_hours: 2,
    comment: "for the team",
  });
  const timed = await res.json();
  assert.equal(timed.expires_at, t.clock.now + 2 * 3600_000);
  assert.equal(timed.comment, "for the team");

  assert.equal(await t.store.consumeToken(plain.token, t.clock.now), true);
  let list = (await (await call("GET", "/tokens")).json()).items;
  assert.deepEqual(list.map((x: { status: string }) => x.status), ["exhausted", "active"]);
  t.clock.now += 3 * 3600_000;
  list = (await (await call("GET", "/tokens")).json()).items;
  assert.deepEqual(list.map((x: { status: string }) => x.status), ["exhausted", "expired"]);

  res = await call("DELETE", `/tokens/${timed.token}`);
  assert.deepEqual(await res.json(), { deleted: timed.token });
  res = await call("DELETE", `/tokens/${timed.token}`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("tokens: invalid options answer 400, a duplicate chosen token 409", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  for (
    const body of [
      { max_uses: 0 },
      { max_uses: 1.5 },
      { max_uses: "x" },
      { expires_in_hours: -1 },
      { comment: 7 },
      {
        token: "no spaces!",
      },
    ]
  ) {
    const res = await call("POST", "/tokens", body);
    assert.equal(res.status, 400, JSON.stringify(body));
    await res.body?.cancel();
  }
  assert.equal((await call("POST", "/tokens", { token: "team-invite" })).status, 201);
  const res = await call("POST", "/tokens", { token: "team-invite" });
  assert.equal(res.status, 409);
  assert.deepEqual(await res.json(), { error: 'Token "team-invite" already exists' });
  assert.equal((await t.store.listTokens()).length, 1);
});

Deno.test("tokens: the same chosen token created at once is one 201, the others 409", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  const answers = await Promise.all(
    Array.from({ length: 4 }, () => call("POST", "/tokens", { token: "raced-token" })),
  );
  const statuses = answers.map((r) => r.status).sort();
  assert.deepEqual(statuses, [201, 409, 409, 409]);
  for (const r of answers.filter((r) => r.status === 409)) {
    assert.deepEqual(await r.json(), { error: 'Token "raced-token" already exists' });
  }
  assert.equal((await t.store.listTokens()).length, 1);
});

Deno.test("randomToken() draws from [a-z0-9] with the requested length", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const tok = randomToken();
    assert.match(tok, /^[a-z0-9]{24}$/);
    seen.add(tok);
  }
  assert.equal(seen.size, 200);
  assert.equal(randomToken(7).length, 7);
});
