// Check-then-act decisions that two instances on one PostgreSQL database make at once: each
// test runs two stores (two instances) and makes their steps overlap deterministically, by
// holding a lock or a row in a third connection until both have reached the point that races,
// then letting go.

import assert from "node:assert/strict";
import { type PostgresStore, startPostgresStore } from "./mod.ts";
import { connect, type Sql } from "./connection.ts";
import { lockKey } from "./write_batch.ts";
import { MetadataService } from "../../discovery/metadata.ts";
import { postgresNeed, startPostgres } from "../../../tests/support/postgres.ts";

const server = postgresNeed.ignore ? null : await startPostgres();
let databases = 0;

const pgTest = (
  name: string,
  fn: (a: PostgresStore, b: PostgresStore, gate: Sql) => Promise<void>,
) =>
  Deno.test({
    name: postgresNeed.title(name),
    ignore: postgresNeed.ignore,
    async fn() {
      const url = await server!.createDatabase(`r${++databases}`);
      const a = await startPostgresStore(url, { name: "tern a" });
      const b = await startPostgresStore(url, { name: "tern b" });
      // The test's own connections (one holds, one looks), outside both instances.
      const gate = connect(url, { max: 2, name: "gate" });
      try {
        await fn(a, b, gate);
      } finally {
        await Promise.all([a.close(), b.close(), gate.end({ timeout: 5 })]);
      }
    },
  });

/** Waits (polling the server, bounded by 30 s) until `check` holds. */
async function until(why: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${why}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sessions of the instances waiting for a lock (advisory or row) right now. */
async function waiting(gate: Sql): Promise<number> {
  const [r] = await gate<{ n: number }[]>`
    SELECT count(*) AS n FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND application_name LIKE 'tern %'`;
  return r.n;
}

/** Holds `take` in a transaction of the gate connection until the returned release is called. */
async function hold(gate: Sql, take: (tx: Sql) => Promise<unknown>): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let taken!: () => void;
  const isTaken = new Promise<void>((r) => taken = r);
  const done = gate.begin(async (tx) => {
    await take(tx as unknown as Sql);
    taken();
    await released;
  });
  await Promise.race([isTaken, done]);
  return async () => {
    release();
    await done;
  };
}

pgTest("the device-token limit holds for sessions on two instances at once", async (a, b, gate) => {
  const now = Date.now();
  const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now })).account;
  const service = (store: PostgresStore) =>
    new MetadataService({
      store,
      irohRelay: () => null,
      turnCredentials: () => null,
      maxSmtpRecipients: 50,
      appVersions: () => "",
      adminContact: "",
      comment: "",
      now: () => now,
    });
  const [onA, onB] = [service(a), service(b)];
  const set = (s: MetadataService, token: string) =>
    s.set(account.id, "INBOX", "/private/devicetoken", token);
  // One below the limit of 20.
  for (let i = 0; i < 19; i++) assert.equal(await set(onA, `old${i}`), null);
  // Every change of the account's tokens takes the account's lock: held here, both sessions
  // have done whatever they do before the change when both wait for it.
  const release = await hold(
    gate,
    (tx) => tx`SELECT pg_advisory_xact_lock(${lockKey(`a:${account.id}`)})`,
  );
  const results = [set(onA, "new-a"), set(onB, "new-b")];
  await until("both instances wait for the account", async () => await waiting(gate) === 2);
  await release();
  const outcomes = await Promise.all(results);
  assert.deepEqual(outcomes.toSorted(), ["TOOMANY", null].toSorted(), "one of the two fits");
  assert.equal((await a.listPushTokens(account.id, 0)).length, 20);
});

pgTest(
  "a token's push job is queued once when two instances queue it at once",
  async (a, b, gate) => {
    const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now: 1 })).account;
    await a.setSetting("gate", "0");
    // Instance a's batch queues the job and then waits for the settings row held here, so its
    // transaction stays open with the job not yet visible to anyone else.
    const release = await hold(
      gate,
      (tx) => tx`SELECT * FROM settings WHERE key = 'gate' FOR UPDATE`,
    );
    const first = a.enqueuePush({ accountId: account.id, token: "t", now: 10 });
    const gated = a.setSetting("gate", "1");
    await until("instance a waits for the held row", async () => await waiting(gate) === 1);
    let secondDone = false;
    const second = b.enqueuePush({ accountId: account.id, token: "t", now: 11 }).finally(() =>
      secondDone = true
    );
    // Instance b either queued (it did not see a's job) or waits for a's transaction.
    await until("instance b queued or waits", async () => secondDone || await waiting(gate) === 2);
    await release();
    const [idA, idB] = await Promise.all([first, second, gated]);
    assert.equal(idB, idA, "the second finds the first's job");
    const [{ n }] = await a.sql<{ n: number }[]>`SELECT count(*) AS n FROM push_jobs`;
    assert.equal(n, 1, "one job: the phone is woken once");
  },
);

Deno.test({
  name: postgresNeed.title("stops the PostgreSQL server of this file"),
  ignore: postgresNeed.ignore,
  // Started as the file loaded, outside any test (see postgres_store_test.ts).
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => server!.stop(),
});
