// What instances on one PostgreSQL database decide together (shared_state.ts) and how their
// buses hear each other (event_channel.ts): every test runs two stores, as two instances would.

import assert from "node:assert/strict";
import { type PostgresStore, startPostgresStore } from "./mod.ts";
import type { RelayEvent } from "../../events/bus.ts";
import { postgresNeed, startPostgres, stopsServerOfFile } from "../../../tests/support/postgres.ts";

const server = postgresNeed.ignore ? null : await startPostgres();
let databases = 0;

/** Two instances on a fresh database. */
async function pair(): Promise<[PostgresStore, PostgresStore]> {
  const url = await server!.createDatabase(`s${++databases}`);
  const a = await startPostgresStore(url);
  return [a, await startPostgresStore(url)];
}

const pgTest = (name: string, fn: (a: PostgresStore, b: PostgresStore) => Promise<void>) =>
  Deno.test({
    name: postgresNeed.title(name),
    ignore: postgresNeed.ignore,
    async fn() {
      const [a, b] = await pair();
      try {
        await fn(a, b);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    },
  });

const PARAMS = {
  freeFailures: 2,
  windowMs: 600_000,
  baseDelayMs: 250,
  maxDelayMs: 5000,
  maxWaitMs: 1000,
  trustMs: 86_400_000 * 30,
};

pgTest("the send rate is one budget for a sender on every instance", async (a, b) => {
  // 60 a minute with a burst of 3: three at once, then one a second.
  const take = (s: PostgresStore) => s.shared.takeSendRate("alice@x", 1000, 2000);
  const first = await Promise.all([take(a), take(b), take(a)]);
  assert.ok(first.every((d) => d.allowed));
  const refused = await take(b);
  assert.equal(refused.allowed, false);
  assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000, `${refused.retryAfterMs}`);
  assert.equal((await a.shared.takeSendRate("bob@x", 1000, 2000)).allowed, true, "per sender");
});

pgTest("login failures on one instance slow the next attempt on another", async (a, b) => {
  const now = 1_000_000;
  assert.deepEqual(await b.shared.loginAdmit("10.0.0.1", "u@x", now, PARAMS), { wait: 0 });
  await a.shared.loginFailure("10.0.0.1", "u@x", now, PARAMS);
  await b.shared.loginFailure("10.0.0.2", "u@x", now, PARAMS);
  assert.equal(await a.shared.loginFailures("acct u@x", now, PARAMS.windowMs), 2);
  // Two free failures used up: each attempt on the account, from anywhere, takes the slot 250 ms
  // after the previous one, until the wait would pass maxWaitMs.
  const waits = [];
  for (let i = 0; i < 5; i++) {
    const s = i % 2 ? b : a;
    waits.push(await s.shared.loginAdmit(`10.0.1.${i}`, "u@x", now, PARAMS));
  }
  assert.deepEqual(waits.slice(0, 4), [{ wait: 250 }, { wait: 500 }, { wait: 750 }, {
    wait: 1000,
  }]);
  assert.ok("refused" in waits[4] && waits[4].retryAfterMs > PARAMS.maxWaitMs);
  // The holder of the password logged in from here before: no waiting for them.
  await b.shared.loginSuccess("10.9.9.9", "u@x", now - 1000, PARAMS);
  assert.deepEqual(await a.shared.loginAdmit("10.9.9.9", "u@x", now, PARAMS), { wait: 0 });
  // A failure from that pair ends its trust.
  await a.shared.loginFailure("10.9.9.9", "u@x", now, PARAMS);
  const after = await b.shared.loginAdmit("10.9.9.9", "u@x", now, PARAMS);
  assert.ok("refused" in after || after.wait > 0);
  // A window later everything starts afresh.
  assert.deepEqual(
    await b.shared.loginAdmit("10.0.0.5", "u@x", now + PARAMS.windowMs + 1, PARAMS),
    { wait: 0 },
  );
});

pgTest("just-in-time creations per address count on every instance", async (a, b) => {
  const now = 5_000_000;
  const takes = await Promise.all([
    a.shared.takeCreation("192.0.2.1", 3, now),
    b.shared.takeCreation("192.0.2.1", 3, now),
    a.shared.takeCreation("192.0.2.1", 3, now),
    b.shared.takeCreation("192.0.2.1", 3, now),
    a.shared.takeCreation("192.0.2.1", 3, now),
  ]);
  assert.equal(takes.filter(Boolean).length, 3);
  assert.equal(await b.shared.takeCreation("192.0.2.2", 3, now), true, "per address");
  assert.equal(await b.shared.takeCreation("192.0.2.1", 3, now + 3600_001), true, "an hour on");
});

pgTest("a scheduled task's run goes to one instance per period", async (a, b) => {
  const now = 9_000_000;
  const claims = await Promise.all([
    a.shared.claimTask("free-bodies", "A", now, 3600_000),
    b.shared.claimTask("free-bodies", "B", now, 3600_000),
  ]);
  assert.deepEqual(claims.filter(Boolean).length, 1);
  assert.equal(await a.shared.claimTask("free-bodies", "A", now + 60_000, 3600_000), false);
  assert.equal(await a.shared.claimTask("sweep-files", "A", now + 60_000, 3600_000), true);
  assert.equal(await b.shared.claimTask("free-bodies", "B", now + 3600_000, 3600_000), true);
});

pgTest("events published on one instance reach the other's bus, never back", async (a, b) => {
  const got: { at: string; e: RelayEvent }[] = [];
  const resyncs: string[] = [];
  const beacons: string[] = [];
  const channel = (s: PostgresStore, name: string) =>
    s.eventChannel({
      instance: name,
      receiver: {
        receive: (e) => got.push({ at: name, e }),
        resync: () => resyncs.push(name),
        beacon: (from) => beacons.push(`${from}>${name}`),
      },
    });
  const ca = channel(a, "A");
  const cb = channel(b, "B");
  await Promise.all([ca.start(), cb.start()]);
  const arrived = (n: number) =>
    waitFor(() => got.length >= n, () => `only ${JSON.stringify(got)}`);
  ca.send({ type: "mailbox.changed", accountId: 7, mailboxId: 9 });
  ca.send({ type: "settings.changed", key: "registration" });
  await arrived(2);
  assert.deepEqual(got, [
    { at: "B", e: { type: "mailbox.changed", accountId: 7, mailboxId: 9 } },
    { at: "B", e: { type: "settings.changed", key: "registration" } },
  ]);
  // Many events at once leave in several notifications (8000 bytes each at most).
  for (let i = 0; i < 500; i++) cb.send({ type: "mailboxes.changed", accountId: i });
  await arrived(502);
  assert.deepEqual(got.slice(2).map((g) => [g.at, "accountId" in g.e && g.e.accountId]), [
    ...Array.from({ length: 500 }, (_, i) => ["A", i]),
  ]);
  ca.beacon({ host: "a" });
  await waitFor(() => beacons.length === 1, () => "no beacon");
  assert.deepEqual(beacons, ["A>B"]);
  // B's listening connection is cut: it listens again and tells its bus to resync.
  await a.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE query ILIKE 'listen%' AND pid <> pg_backend_pid()
    AND application_name = ${"tern"}`;
  await waitFor(() => resyncs.length >= 2, () => `resyncs: ${resyncs}`);
  ca.send({ type: "mailboxes.changed", accountId: 1000 });
  await arrived(503);
});

async function waitFor(done: () => boolean, why: () => string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!done()) {
    if (Date.now() > until) throw new Error(`timed out: ${why()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

pgTest(
  "the outbound lock is held by one instance and passes on when its session ends",
  async (a, b) => {
    const la = a.leaderLock("outbound");
    const lb = b.leaderLock("outbound");
    assert.equal(await la.acquire(), true);
    assert.equal(await lb.acquire(), false, "taken");
    assert.equal(await la.acquire(), true, "still held, checked");
    assert.equal(await lb.acquire(), false);
    // The holder's session ends as when its process dies (kill -9) or its connection drops.
    const killed = await server!.psql(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
       AND classid = ${0x7465726e} AND objid = 1 AND objsubid = 2 AND granted`,
    );
    assert.match(killed, /1/);
    await eventually(() => lb.acquire(), "b never took the lock");
    // The old holder's driver reconnects to a session that holds nothing: it sees it lost it.
    const still = await la.acquire().catch(() => false);
    assert.equal(still, false, "a knows it lost the lock");
    assert.equal(await la.acquire(), false, "and cannot take it back while b holds it");
    await lb.close();
    await eventually(() => la.acquire(), "a never took the lock back");
  },
);

/** Tries until `attempt` says yes (an error counts as no), for at most `ms`. */
async function eventually(attempt: () => Promise<boolean>, why: string, ms = 10_000) {
  const until = Date.now() + ms;
  while (!(await attempt().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out: ${why}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Last in the file: the tests above share the server.
stopsServerOfFile(server);
