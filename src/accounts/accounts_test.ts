import assert from "node:assert/strict";
import { AccountService } from "./accounts.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { SettingsService } from "../settings/mod.ts";
import { isRelayError } from "../errors.ts";
import { LoginThrottle, scryptHasher } from "../auth/mod.ts";
import type { PasswordHasher } from "../auth/mod.ts";

/** The real hasher, counting what it is asked to do. */
function countingHasher() {
  const calls = { hash: 0, verify: 0, verifiedAgainst: [] as string[] };
  const hasher: PasswordHasher = {
    hash: (pw) => (calls.hash++, scryptHasher.hash(pw)),
    verify: (pw, stored) => {
      calls.verify++;
      calls.verifiedAgainst.push(stored);
      return scryptHasher.verify(pw, stored);
    },
    needsRehash: (h) => scryptHasher.needsRehash(h),
    dummyHash: () => scryptHasher.dummyHash(),
  };
  return { hasher, calls };
}

async function setup(
  limits = {},
  extra: { hasher?: PasswordHasher; throttle?: LoginThrottle } = {},
) {
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
    ...extra,
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

Deno.test("authenticate(): an address blocked while its first login hashes gets no account", async () => {
  // The hash waits for the test: the block lands after the blocklist was first looked at and
  // before the creation.
  let hashing!: () => void;
  const started = new Promise<void>((r) => hashing = r);
  let proceed!: () => void;
  const blockedNow = new Promise<void>((r) => proceed = r);
  const hasher: PasswordHasher = {
    ...scryptHasher,
    hash: async (pw) => {
      hashing();
      await blockedNow;
      return scryptHasher.hash(pw);
    },
  };
  using t = await setup({}, { hasher });
  const login = t.svc.authenticate("latecomer@example.org", "password123");
  await started;
  assert.equal(await t.store.addBlocked("latecomer@example.org", "spam", 1), true);
  proceed();
  await assert.rejects(login, (e) => isRelayError(e, "auth_failed"), "as a blocked address");
  assert.equal(await t.store.getAccount("latecomer@example.org"), null);
  // The answer is the one a blocked address gets from the start.
  await assert.rejects(
    t.svc.authenticate("latecomer@example.org", "password123"),
    (e) => isRelayError(e, "auth_failed"),
  );
  assert.equal(await t.store.countAccounts(), 0);
});

Deno.test("authenticate() creates no role account (postmaster, webmaster...) on first login", async () => {
  using t = await setup({ usernameMinLength: 4, usernameMaxLength: 20 });
  for (const name of ["postmaster", "webmaster", "Abuse", "mailer-daemon", "admin", "root"]) {
    await assert.rejects(
      t.svc.authenticate(`${name}@example.org`, "password123"),
      (e) => isRelayError(e, "auth_failed"),
      name,
    );
  }
  assert.equal(await t.store.countAccounts(), 0);
  // The operator can make them, and other names of that length are free.
  await t.svc.create("webmaster@example.org", "password123");
  await t.svc.authenticate("webmaster@example.org", "password123");
  await t.svc.authenticate("webmasters@example.org", "password123");
  assert.equal(await t.store.countAccounts(), 2);
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

Deno.test("authenticate() counts JIT creations of IPv6 clients per /64", async () => {
  using t = await setup({ maxCreationsPerIpPerHour: 2 });
  // One host with a /64 picks a new source address for every login.
  await t.svc.authenticate("ratesix01@example.org", "password123", { ip: "2001:db8:1:2::a" });
  await t.svc.authenticate("ratesix02@example.org", "password123", { ip: "2001:db8:1:2::b" });
  await assert.rejects(
    t.svc.authenticate("ratesix03@example.org", "password123", { ip: "2001:db8:1:2::c" }),
    (e) => isRelayError(e, "rate_limited"),
  );
  await t.svc.authenticate("ratesix03@example.org", "password123", { ip: "2001:db8:1:3::c" });
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

Deno.test("authenticate(): an unknown name costs the same verification as a wrong password", async () => {
  const { hasher, calls } = countingHasher();
  using t = await setup({}, { hasher });
  await t.svc.create("known0001@example.org", "password123");
  await t.settings.set("jit_enabled", "false");
  const cases: [string, string, string][] = [
    ["wrong password", "known0001@example.org", "password124"],
    ["unknown name, JIT off", "nobody001@example.org", "password123"],
    ["other domain", "known0001@other.example", "password123"],
    ["empty password", "known0001@example.org", ""],
  ];
  for (const [what, addr, pw] of cases) {
    const before = { ...calls, verifiedAgainst: [...calls.verifiedAgainst] };
    await assert.rejects(t.svc.authenticate(addr, pw, { ip: `198.51.100.${cases.length}` }));
    assert.equal(calls.verify - before.verify, 1, `${what}: one verification`);
    assert.equal(calls.hash - before.hash, 0, `${what}: no hashing`);
    const against = calls.verifiedAgainst.at(-1)!;
    assert.equal(scryptHasher.needsRehash(against), false, `${what}: current parameters`);
  }
  // Registration closed, bad username, blocked name: the same.
  await t.settings.set("jit_enabled", "true");
  await t.settings.set("registration", "closed");
  const v = calls.verify;
  await assert.rejects(t.svc.authenticate("closed001@example.org", "password123"));
  await t.settings.set("registration", "open");
  await assert.rejects(t.svc.authenticate("x@example.org", "password123"));
  assert.equal(calls.verify - v, 2);
});

Deno.test("authenticate(): a first login hashes once and verifies nothing more", async () => {
  const { hasher, calls } = countingHasher();
  using t = await setup({}, { hasher });
  await t.svc.authenticate("newuser01@example.org", "password123");
  assert.deepEqual([calls.hash, calls.verify], [1, 0]);
  await t.svc.authenticate("newuser01@example.org", "password123");
  assert.deepEqual([calls.hash, calls.verify], [1, 0], "verified-password cache");
});

Deno.test("authenticate(): an old-parameter hash verifies and is replaced by a current one", async () => {
  using t = await setup();
  // Written by the earlier release (scrypt N=2^14) for "legacy-password-1".
  const legacy =
    "scrypt$16384$8$1$k+HW+hl5J1p97zCOYbHTrw==$q/C1SZycM1cR+o+o5kAxpnNGfxfRK/AjzwATlGolnQo=";
  await t.store.createAccount({ address: "oldtimer1@example.org", passwordHash: legacy, now: 1 });
  await assert.rejects(t.svc.authenticate("oldtimer1@example.org", "legacy-password-2"));
  assert.equal((await t.store.getAccount("oldtimer1@example.org"))!.passwordHash, legacy);
  const a = await t.svc.authenticate("oldtimer1@example.org", "legacy-password-1");
  const stored = (await t.store.getAccount("oldtimer1@example.org"))!.passwordHash;
  assert.notEqual(stored, legacy);
  assert.equal(a.passwordHash, stored);
  assert.equal(scryptHasher.needsRehash(stored), false);
  assert.equal(await scryptHasher.verify("legacy-password-1", stored), true);
  await t.svc.authenticate("oldtimer1@example.org", "legacy-password-1");
  // New accounts get the current parameters.
  await t.svc.create("newcomer1@example.org", "password123");
  const fresh = (await t.store.getAccount("newcomer1@example.org"))!.passwordHash;
  assert.equal(scryptHasher.needsRehash(fresh), false);
});

Deno.test("authenticate(): guessing is throttled per address and per account, not reset by another login", async () => {
  const throttle = new LoginThrottle({ freeFailures: 3, maxWaitMs: 0 });
  using t = await setup({}, { throttle });
  await t.svc.create("victim001@example.org", "password123");
  await t.svc.create("guesser01@example.org", "password123");
  await t.svc.authenticate("victim001@example.org", "password123", { ip: "192.0.2.50" });
  await t.svc.authenticate("guesser01@example.org", "password123", { ip: "192.0.2.66" });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(
      t.svc.authenticate("victim001@example.org", `guess-${i}-xx`, { ip: "192.0.2.66" }),
      (e) => isRelayError(e, "auth_failed"),
    );
  }
  // The guesser's own login still works and resets nothing.
  await t.svc.authenticate("guesser01@example.org", "password123", { ip: "192.0.2.66" });
  await assert.rejects(
    t.svc.authenticate("victim001@example.org", "guess-3-xx", { ip: "192.0.2.66" }),
    (e) => isRelayError(e, "rate_limited"),
  );
  // Unknown names are throttled the same way.
  await assert.rejects(
    t.svc.authenticate("nosuchone@example.org", "guess-3-xx", { ip: "192.0.2.66" }),
    (e) => isRelayError(e, "rate_limited"),
  );
  // The account is throttled from a fresh address too; its owner's address is not.
  await assert.rejects(
    t.svc.authenticate("victim001@example.org", "guess-4-xx", { ip: "203.0.113.7" }),
    (e) => isRelayError(e, "rate_limited"),
  );
  await t.svc.authenticate("victim001@example.org", "password123", { ip: "192.0.2.50" });
});

Deno.test("authenticate(): the last login is written once per day", async () => {
  const store = openSqliteStore(":memory:");
  try {
    const settings = new SettingsService({ store });
    await settings.load();
    const clock = { now: Date.UTC(2026, 11, 3, 8, 0) };
    const svc = new AccountService({
      store,
      settings,
      domain: "example.org",
      limits: {
        usernameMinLength: 9,
        usernameMaxLength: 9,
        passwordMinLength: 9,
        maxCreationsPerIpPerHour: 0,
      },
      now: () => clock.now,
    });
    const first = clock.now;
    await svc.authenticate("daily0001@example.org", "password123");
    clock.now += 3600_000;
    await svc.authenticate("daily0001@example.org", "password123");
    assert.equal((await store.getAccount("daily0001@example.org"))!.lastLoginAt, first);
    clock.now = Date.UTC(2026, 11, 4, 0, 1);
    await svc.authenticate("daily0001@example.org", "password123");
    assert.equal((await store.getAccount("daily0001@example.org"))!.lastLoginAt, clock.now);
  } finally {
    store.close();
  }
});
