import assert from "node:assert/strict";
import {
  dummyHash,
  hashPassword,
  needsRehash,
  passwordWork,
  SCRYPT_PARAMS,
  verifyPassword,
} from "./passwords.ts";

/** Written by the release before 2026-12 (scrypt N=2^14, r=8, p=1) for "legacy-password-1". */
const LEGACY_HASH =
  "scrypt$16384$8$1$k+HW+hl5J1p97zCOYbHTrw==$q/C1SZycM1cR+o+o5kAxpnNGfxfRK/AjzwATlGolnQo=";

Deno.test("passwords: hashes made by the earlier release still verify and ask for a rehash", async () => {
  assert.equal(await verifyPassword("legacy-password-1", LEGACY_HASH), true);
  assert.equal(await verifyPassword("legacy-password-2", LEGACY_HASH), false);
  assert.equal(needsRehash(LEGACY_HASH), true);
});

Deno.test("passwords: new hashes carry the current parameters and need no rehash", async () => {
  const h = await hashPassword("fresh-password-1");
  const { n, r, p } = SCRYPT_PARAMS;
  assert.match(
    h,
    new RegExp(`^scrypt\\$${n}\\$${r}\\$${p}\\$[A-Za-z0-9+/=]{24}\\$[A-Za-z0-9+/=]{44}$`),
  );
  assert.equal(needsRehash(h), false);
  assert.equal(await verifyPassword("fresh-password-1", h), true);
  assert.equal(await verifyPassword("fresh-password-2", h), false);
});

Deno.test("passwords: malformed or hostile hashes never match and cost one run like any other", async () => {
  const before = passwordWork().verifications;
  for (
    const bad of [
      "",
      "scrypt$bogus",
      "scrypt$16384$8$1$!!!$!!!",
      "scrypt$16385$8$1$k+HW+hl5J1p97zCOYbHTrw==$q/C1SZycM1cR+o+o5kAxpnNGfxfRK/AjzwATlGolnQo=",
      // N = 2^30 would take 128 GiB: refused, not computed.
      "scrypt$1073741824$8$1$k+HW+hl5J1p97zCOYbHTrw==$q/C1SZycM1cR+o+o5kAxpnNGfxfRK/AjzwATlGolnQo=",
      "{SHA512-CRYPT}$6$abc$def",
    ]
  ) {
    assert.equal(await verifyPassword("legacy-password-1", bad), false, bad);
    assert.equal(needsRehash(bad), true, bad);
  }
  assert.equal(passwordWork().verifications - before, 6);
});

Deno.test("passwords: a dummy hash is well formed, current and matches nothing", async () => {
  const d = dummyHash();
  assert.equal(needsRehash(d), false);
  assert.notEqual(d, dummyHash());
  assert.equal(await verifyPassword("", d), false);
  assert.equal(await verifyPassword("anything-at-all", d), false);
});

Deno.test("passwords: a burst runs at most one per core at a time and all verify", async () => {
  const n = 24;
  let most = 0;
  const probe = setInterval(() => (most = Math.max(most, passwordWork().running)), 0);
  try {
    const hashes = await Promise.all(Array.from({ length: n }, (_, i) => hashPassword(`pw-${i}`)));
    const { limit } = passwordWork();
    assert.equal(limit, Math.max(1, Math.min(16, navigator.hardwareConcurrency)));
    assert.ok(most <= limit, `at most ${limit} at once, saw ${most}`);
    assert.equal(passwordWork().running, 0);
    assert.equal(passwordWork().waiting, 0);
    assert.equal(new Set(hashes).size, n, "each hash has its own salt");
    const checks = await Promise.all(hashes.map((h, i) => verifyPassword(`pw-${i}`, h)));
    assert.deepEqual(checks, Array(n).fill(true));
  } finally {
    clearInterval(probe);
  }
});

Deno.test("passwords: hashing runs off the event loop (timers fire while a burst computes)", async () => {
  // Not a timing assertion: counts timer callbacks that ran before the burst finished. With the
  // work on the event loop none could run until every hash was done.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    let done = false;
    const burst = Promise.all(Array.from({ length: 40 }, (_, i) => hashPassword(`x-${i}`)))
      .then(() => (done = true));
    while (!done && ticks < 3) await new Promise((r) => setTimeout(r, 0));
    assert.equal(done, false, "the burst was still running while timers fired");
    await burst;
  } finally {
    clearInterval(timer);
  }
});

Deno.test("passwords: every run goes to the worker pool, at most one worker per core", async () => {
  const legacy =
    "scrypt$16384$8$1$k+HW+hl5J1p97zCOYbHTrw==$q/C1SZycM1cR+o+o5kAxpnNGfxfRK/AjzwATlGolnQo=";
  const before = passwordWork().inWorkers;
  let most = 0;
  const probe = setInterval(() => (most = Math.max(most, passwordWork().workers)), 0);
  try {
    const checks = await Promise.all(
      Array.from({ length: 16 }, () => verifyPassword("legacy-password-1", legacy)),
    );
    assert.deepEqual(checks, Array(16).fill(true));
  } finally {
    clearInterval(probe);
  }
  const w = passwordWork();
  assert.equal(w.inThread, null, "workers can run here");
  assert.equal(w.inWorkers - before, 16, "all sixteen ran in workers");
  assert.ok(most >= 1 && most <= w.limit, `workers alive at most ${most}, limit ${w.limit}`);
});
