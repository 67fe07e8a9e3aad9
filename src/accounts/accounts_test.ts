import assert from "node:assert/strict";
import { AccountService } from "./accounts.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { SettingsService } from "../settings/mod.ts";
import { isRelayError } from "../errors.ts";

async function setup(limits = {}) {
  const store = openSqliteStore(":memory:");
  const settings = new SettingsService({ store });
  await settings.load();
  const svc = new AccountService({
    store,
    settings,
    domain: "example.org",
    limits: {
      usernameMinLength: 9,
      usernameMaxLength: 9,
      passwordMinLength: 9,
      maxCreationsPerIpPerHour: 0,
      ...limits,
    },
    sleep: () => Promise.resolve(),
  });
  return { store, settings, svc, [Symbol.dispose]: () => store.close() };
}

Deno.test("authenticate() creates an unknown account on first login and then checks the password", async () => {
  using t = await setup();
  const a = await t.svc.authenticate("abcdefghi@example.org", "password123");
  assert.equal(a.address, "abcdefghi@example.org");
  const again = await t.svc.authenticate("ABCDEFGHI@example.org", "password123");
  assert.equal(again.id, a.id);
  const before = (await t.store.getAccount("abcdefghi@example.org"))!.passwordHash;
  await assert.rejects(
    t.svc.authenticate("abcdefghi@example.org", "wrongpass99"),
    (e) => isRelayError(e, "auth_failed"),
  );
  assert.equal((await t.store.getAccount("abcdefghi@example.org"))!.passwordHash, before);
});

Deno.test("authenticate() refuses JIT for bad usernames, short passwords and other domains", async () => {
  using t = await setup();
  for (
    const [addr, pw] of [
      ["short@example.org", "password123"],
      ["toolongname@example.org", "password123"],
      ["ABC+efghi@example.org", "password123"],
      ["abcdefghi@example.org", "admin"],
      ["abcdefghi@other.org", "password123"],
    ]
  ) {
    await assert.rejects(t.svc.authenticate(addr, pw), (e) => isRelayError(e, "auth_failed"), addr);
  }
  assert.equal(await t.store.countAccounts(), 0);
});

Deno.test("authenticate() creates exactly one account for concurrent first logins", async () => {
  using t = await setup();
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, () => t.svc.authenticate("racer0001@example.org", "password123")),
  );
  assert.ok(results.every((r) => r.status === "fulfilled"));
  assert.equal(await t.store.countAccounts(), 1);
});

Deno.test("authenticate() honours registration, JIT settings and blocking", async () => {
  using t = await setup();
  await t.settings.set("registration", "closed");
  await assert.rejects(
    t.svc.authenticate("closed001@example.org", "password123"),
    (e) => isRelayError(e, "registration_closed"),
  );
  await t.settings.set("registration", "token");
  await assert.rejects(
    t.svc.authenticate("token0001@example.org", "password123"),
    (e) => isRelayError(e, "registration_closed"),
  );
  await t.svc.reserve("token0001@example.org");
  await t.svc.authenticate("token0001@example.org", "password123");
  await t.settings.set("registration", "open");
  await t.settings.set("jit_enabled", "false");
  await assert.rejects(
    t.svc.authenticate("nojit0001@example.org", "password123"),
    (e) => isRelayError(e, "auth_failed"),
  );
  await t.svc.setBlocked("token0001@example.org", true);
  await assert.rejects(
    t.svc.authenticate("token0001@example.org", "password123"),
    (e) => isRelayError(e, "account_blocked"),
  );
});

Deno.test("authenticate() limits JIT creations per client address", async () => {
  using t = await setup({ maxCreationsPerIpPerHour: 2 });
  await t.svc.authenticate("ratelim01@example.org", "password123", { ip: "192.0.2.1" });
  await t.svc.authenticate("ratelim02@example.org", "password123", { ip: "192.0.2.1" });
  await assert.rejects(
    t.svc.authenticate("ratelim03@example.org", "password123", { ip: "192.0.2.1" }),
    (e) => isRelayError(e, "rate_limited"),
  );
  await t.svc.authenticate("ratelim03@example.org", "password123", { ip: "192.0.2.2" });
});

Deno.test("generateCredentials() follows the configured lengths and charset", async () => {
  using t = await setup();
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const c = t.svc.generateCredentials();
    assert.match(c.email, /^[a-z0-9]{9}@example\.org$/);
    assert.equal(c.password.length, 12);
    assert.equal(t.svc.credentialProblem(c.email, c.password), null);
    seen.add(c.email);
  }
  assert.equal(seen.size, 50);
});
