import assert from "node:assert/strict";
import { LoginThrottle } from "./login_throttle.ts";

function setup(options = {}) {
  const clock = { now: 1_000_000 };
  const t = new LoginThrottle({
    freeFailures: 3,
    maxDelayMs: 4000,
    maxWaitMs: 10_000,
    now: () => clock.now,
    ...options,
  });
  /** Admits, waits as told (on the fake clock), then records a failure; returns the wait. */
  const fail = (ip: string, acct: string) => {
    const g = t.admit(ip, acct);
    if ("refused" in g) return "refused";
    clock.now += g.wait;
    t.recordFailure(ip, acct);
    return g.wait;
  };
  return { clock, t, fail };
}

Deno.test("throttle: free failures, then each attempt waits for a doubling gap", () => {
  const { t, fail, clock } = setup();
  assert.deepEqual([fail("a", "x"), fail("a", "x"), fail("a", "x")], [0, 0, 0]);
  // Three failures in, the next attempt waits 250 ms after the last; then 500 ms, 1 s...
  assert.equal(fail("a", "x"), 250);
  assert.equal(fail("a", "x"), 500);
  assert.equal(fail("a", "x"), 1000);
  clock.now += 10_000;
  assert.equal(t.failures("ip", "a"), 6);
  assert.equal(fail("a", "x"), 0, "the gap has passed");
});

Deno.test("throttle: baseDelayMs sets the first gap past the free failures; it doubles from there", () => {
  const { fail } = setup({ baseDelayMs: 1000, maxWaitMs: 60_000 });
  for (let i = 0; i < 3; i++) fail("a", "x");
  assert.equal(fail("a", "x"), 1000);
  assert.equal(fail("a", "x"), 2000);
  assert.equal(fail("a", "x"), 4000, "up to maxDelayMs");
  assert.equal(fail("a", "x"), 4000);
});

Deno.test("throttle: parallel attempts queue one gap apart, and beyond maxWait are refused", () => {
  const { t, fail } = setup();
  for (let i = 0; i < 6; i++) fail("a", "x");
  // Six failures: the gap is 2 s; attempts made at once get consecutive slots.
  const waits = [0, 1, 2].map(() => {
    const g = t.admit("a", "y");
    return "refused" in g ? "refused" : g.wait;
  });
  assert.equal(typeof waits[0], "number");
  assert.equal((waits[1] as number) - (waits[0] as number), 2000);
  assert.equal((waits[2] as number) - (waits[1] as number), 2000);
  const more: (number | "refused")[] = [];
  for (let i = 0; i < 3; i++) {
    const g = t.admit("a", "y");
    more.push("refused" in g ? "refused" : g.wait);
  }
  assert.ok(more.includes("refused"), `later ones are refused: ${more}`);
});

Deno.test("throttle: another account's success does not reset the address; the account counts too", () => {
  const { t, fail } = setup({ maxWaitMs: 0 });
  // The guesser's own account logs in fine first.
  t.recordSuccess("a", "own");
  for (let i = 0; i < 3; i++) assert.equal(fail("a", "victim"), 0);
  // Its own account still works from there (trusted pair)...
  assert.deepEqual(t.admit("a", "own"), { wait: 0 });
  t.recordSuccess("a", "own");
  // ...but that success reset nothing: the next guess from the address is throttled.
  assert.equal(fail("a", "victim"), "refused");
  assert.equal(t.failures("ip", "a"), 3);
  // From another address, the account itself is throttled.
  assert.equal(fail("b", "victim"), "refused");
  // An address that is itself fine but targets an account with no failures passes.
  assert.equal(fail("c", "other"), 0);
});

Deno.test("throttle: the password holder's known address is not held up by someone else's guessing", () => {
  const { t, fail } = setup({ maxWaitMs: 0 });
  t.recordSuccess("home", "victim");
  for (let i = 0; i < 5; i++) fail(`attacker-${i}`, "victim");
  assert.equal(fail("elsewhere", "victim"), "refused");
  assert.deepEqual(t.admit("home", "victim"), { wait: 0 });
  // A failure from the trusted pair ends the trust.
  t.recordFailure("home", "victim");
  assert.ok("refused" in t.admit("home", "victim"));
});

Deno.test("throttle: the window ends the count; trust expires", () => {
  const { t, fail, clock } = setup({ maxWaitMs: 0, windowMs: 60_000, trustMs: 120_000 });
  for (let i = 0; i < 4; i++) fail("a", "x");
  assert.ok("refused" in t.admit("a", "x"));
  clock.now += 61_000;
  assert.equal(t.failures("ip", "a"), 0);
  assert.deepEqual(t.admit("a", "x"), { wait: 0 });
  t.recordSuccess("a", "x");
  for (let i = 0; i < 4; i++) t.recordFailure("b", "x");
  assert.deepEqual(t.admit("a", "x"), { wait: 0 });
  clock.now += 121_000;
  for (let i = 0; i < 4; i++) t.recordFailure("b", "x");
  assert.ok("refused" in t.admit("a", "x"), "trust is gone, the account is throttled");
});

Deno.test("throttle: memory stays bounded under many addresses", () => {
  const { t } = setup({ maxKeys: 1000 });
  for (let i = 0; i < 20_000; i++) t.recordFailure(`10.0.${i >> 8}.${i & 255}`, `u${i}`);
  for (let i = 0; i < 20_000; i++) t.recordSuccess(`10.1.${i >> 8}.${i & 255}`, `u${i}`);
  // Internal maps are private; the observable bound: old keys were forgotten.
  assert.equal(t.failures("ip", "10.0.0.0"), 0);
  assert.equal(t.failures("ip", `10.0.${19_999 >> 8}.${19_999 & 255}`), 1);
});
