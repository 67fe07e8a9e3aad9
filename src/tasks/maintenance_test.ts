// The maintenance tasks on a real (in-memory) SQLite store with a clock the test moves: what each
// task deletes, what it must never delete, and whom it tells.

import assert from "node:assert/strict";
import { bytesBody } from "../store/message_input.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { Maintenance, TASKS } from "./maintenance.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1);

function setup(options: { quotaBytes?: number } = {}) {
  const store = openSqliteStore(":memory:");
  let now = T0;
  const removed: string[] = [];
  const deleted: number[] = [];
  const m = new Maintenance({
    store,
    retention: {
      deleteMailsAfterDays: 20,
      deleteLargeAfterDays: 7,
      deleteInactiveUsersAfterDays: 90,
    },
    defaultQuotaBytes: options.quotaBytes ?? 1_000_000,
    onRemoved: (accountId, mailboxId) => removed.push(`${accountId}/${mailboxId}`),
    onAccountDeleted: (id) => deleted.push(id),
    now: () => now,
  });
  const account = async (address: string) =>
    (await store.createAccount({ address, passwordHash: "x", now })).account;
  /** A message of `size` bytes stored `ageDays` ago. */
  const message = async (accountId: number, size: number, ageDays: number, box = "INBOX") => {
    const data = new TextEncoder().encode(`Subject: ${size}\r\n\r\n`.padEnd(size, "x"));
    return await store.append({
      accountId,
      mailboxName: box,
      body: bytesBody(data),
      flags: [],
      internalDate: now - ageDays * DAY,
      defaultQuotaBytes: 100_000_000,
    });
  };
  const uids = async (accountId: number, box = "INBOX") => {
    const mb = (await store.getMailbox(accountId, box))!;
    return (await store.listMessages(mb.id)).map((x) => x.size);
  };
  return {
    store,
    m,
    removed,
    deleted,
    account,
    message,
    sizes: uids,
    setNow: (t: number) => (now = t),
    [Symbol.asyncDispose]: () => store.close(),
  };
}

Deno.test("expire-mail deletes messages older than delete_mails_after days, in every mailbox", async () => {
  await using t = setup();
  const a = await t.account("alice@example.org");
  await t.store.createMailbox(a.id, "Archive");
  await t.message(a.id, 100, 25);
  await t.message(a.id, 101, 19);
  await t.message(a.id, 102, 21, "Archive");
  await t.message(a.id, 103, 1, "Archive");
  assert.equal(await t.m.run("expire-mail"), "2 messages deleted");
  assert.deepEqual(await t.sizes(a.id), [101]);
  assert.deepEqual(await t.sizes(a.id, "Archive"), [103]);
  // Each mailbox that lost messages is reported once (IMAP sessions then see the expunges).
  const inbox = (await t.store.getMailbox(a.id, "INBOX"))!.id;
  const archive = (await t.store.getMailbox(a.id, "Archive"))!.id;
  assert.deepEqual(t.removed.toSorted(), [`${a.id}/${archive}`, `${a.id}/${inbox}`].toSorted());
  assert.equal(await t.m.run("expire-mail"), "0 messages deleted");
});

Deno.test("expire-large deletes only messages over 200 kB older than delete_large_after days", async () => {
  await using t = setup();
  const a = await t.account("alice@example.org");
  await t.message(a.id, 300_000, 8); // large and old: goes
  await t.message(a.id, 300_001, 6); // large, young: stays
  await t.message(a.id, 150_000, 10); // old, small: stays
  assert.equal(await t.m.run("expire-large"), "1 messages deleted");
  assert.deepEqual(await t.sizes(a.id), [300_001, 150_000]);
});

Deno.test("expire-accounts deletes accounts without login for delete_inactive_users_after days", async () => {
  await using t = setup();
  const idle = await t.account("idle@example.org");
  const active = await t.account("active@example.org");
  const fresh = await t.account("fresh@example.org");
  await t.store.recordLogin(idle.id, T0);
  await t.store.recordLogin(active.id, T0 + 80 * DAY);
  t.setNow(T0 + 91 * DAY);
  // Never logged in since its creation 91 days ago counts as inactive too.
  assert.equal(await t.m.run("expire-accounts"), "2 accounts deleted");
  assert.deepEqual(t.deleted.toSorted(), [idle.id, fresh.id].toSorted());
  assert.equal(await t.store.getAccount("idle@example.org"), null);
  assert.equal(await t.store.getAccount("fresh@example.org"), null);
  assert.ok(await t.store.getAccount("active@example.org"));
});

Deno.test("quota-trim: past 75 % the oldest go until 70 %; mail younger than 24 h never", async () => {
  await using t = setup({ quotaBytes: 10_000 });
  const a = await t.account("alice@example.org");
  for (const age of [9, 8, 7, 6, 5]) await t.message(a.id, 1_000, age);
  await t.message(a.id, 3_000, 2);
  // 8 000 of 10 000 bytes: over 75 %; the oldest go until at most 7 000 remain.
  assert.equal(await t.m.trimQuota(a.id), 1);
  assert.deepEqual(await t.sizes(a.id), [1_000, 1_000, 1_000, 1_000, 3_000]);
  assert.equal(await t.m.trimQuota(a.id), 0, "at 70 % nothing more goes");

  // Oldest first by date, whatever the UID order; mail younger than 24 h is kept even when
  // the mailbox stays over quota.
  const b = await t.account("bob@example.org");
  await t.message(b.id, 8_000, 0.5);
  await t.message(b.id, 1_000, 2);
  assert.equal(await t.m.trimQuota(b.id), 1);
  assert.deepEqual(await t.sizes(b.id), [8_000]);
  assert.equal(await t.m.trimQuota(b.id), 0);

  // A per-account quota replaces the default one; the task walks every account.
  const c = await t.account("carol@example.org");
  await t.store.setQuota(c.id, 100_000);
  for (let i = 0; i < 8; i++) await t.message(c.id, 1_000, 10);
  assert.equal(await t.m.run("quota-trim"), "0 messages deleted in 0 accounts");
  await t.store.setQuota(c.id, 8_000);
  assert.equal(await t.m.run("quota-trim"), "3 messages deleted in 1 accounts");
  assert.equal((await t.sizes(c.id)).length, 5);
  assert.equal(await t.m.trimQuota(9999), 0, "an unknown account is no error");
});

Deno.test("quota-trim after a delivery: under 75 % as the delivery saw it, no read; past it, trims", async () => {
  await using t = setup({ quotaBytes: 10_000 });
  let reads = 0;
  const counted = new Proxy(t.store, {
    get(target, name, receiver) {
      if (name === "getAccountById") reads++;
      return Reflect.get(target, name, receiver);
    },
  });
  const m = new Maintenance({
    store: counted,
    retention: {
      deleteMailsAfterDays: 20,
      deleteLargeAfterDays: 7,
      deleteInactiveUsersAfterDays: 90,
    },
    defaultQuotaBytes: 10_000,
    now: () => T0,
  });
  const a = await t.account("alice@example.org");
  for (const age of [9, 8, 7]) await t.message(a.id, 2_500, age);
  const deliver = async () => {
    const [o] = await t.store.deliver({
      body: bytesBody(new TextEncoder().encode("Subject: x\r\n\r\n".padEnd(100, "x"))),
      internalDate: T0,
      targets: [{ address: "alice@example.org", mailboxName: "INBOX" }],
      defaultQuotaBytes: 10_000,
    });
    assert.ok(o.ok);
    return o;
  };
  // 7 600 of 10 000 after this delivery: past 75 %, so the account is read and trimmed.
  const over = await deliver();
  assert.equal(over.usedBytes, 7_600);
  assert.equal(await t.store.usedBytes(a.id), over.usedBytes);
  assert.equal(await m.trimQuota(a.id, over), 1);
  assert.equal(reads, 1);
  assert.equal(await t.store.usedBytes(a.id), 5_100);
  // 5 200 after the next: well under, nothing read, nothing removed.
  const under = await deliver();
  assert.deepEqual([under.usedBytes, under.quotaBytes], [5_200, null]);
  assert.equal(await m.trimQuota(a.id, under), 0);
  assert.equal(reads, 1);
  // The account's own quota counts, as the delivery read it.
  await t.store.setQuota(a.id, 6_000);
  const own = await deliver();
  assert.deepEqual([own.usedBytes, own.quotaBytes], [5_300, 6_000]);
  assert.equal(await m.trimQuota(a.id, own), 1);
  assert.equal(reads, 2);
  assert.equal(await t.store.usedBytes(a.id), 2_800);
});

Deno.test("expired messages leave no readable body; unknown tasks are named", async () => {
  await using t = setup();
  const a = await t.account("alice@example.org");
  await t.message(a.id, 500, 30);
  await t.message(a.id, 600, 1);
  const inbox = (await t.store.getMailbox(a.id, "INBOX"))!;
  const [old, young] = await t.store.listMessages(inbox.id);
  await t.m.run("expire-mail");
  assert.match(await t.m.run("free-bodies"), /^\d+ bodies freed$/);
  assert.equal(await t.store.readBody(old.bodyId), null);
  assert.equal((await t.store.readBody(young.bodyId))!.length, 600);
  await assert.rejects(t.m.run("defrag"), /Unknown task "defrag"; known: expire-mail, /);
  assert.deepEqual(Object.keys(await t.m.runAll()), TASKS.map((x) => x.name));
});

Deno.test("start() runs every task at once and then on its interval; stop() waits for a run", async () => {
  await using t = setup();
  const a = await t.account("alice@example.org");
  await t.message(a.id, 100, 30);
  t.m.start(3_600_000);
  await t.m.stop();
  assert.deepEqual(await t.sizes(a.id), [], "the first run happened before stop() returned");
});
