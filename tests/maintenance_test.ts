// Quota and retention: expiry of old and large mail and of inactive accounts, trimming past 75 %
// of the quota (never mail younger than 24 h), freeing bodies, and the quota IMAP reports.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";

const DAY = 86_400_000;
const enc = new TextEncoder();

function message(size: number): Uint8Array {
  const head = "From: a@example.org\r\nSubject: x\r\n\r\n";
  return enc.encode(head + "x".repeat(Math.max(0, size - head.length - 2)) + "\r\n");
}

async function put(t: TestRelay, address: string, size: number, internalDate: number) {
  const account = (await t.relay.services.store.getAccount(address))!;
  await t.relay.services.mailboxes.append({
    accountId: account.id,
    mailboxName: "INBOX",
    data: message(size),
    flags: [],
    internalDate,
  });
}

async function usage(t: TestRelay, address: string) {
  const a = (await t.relay.services.store.getAccount(address))!;
  const mb = (await t.relay.services.store.getMailbox(a.id, "INBOX"))!;
  return { used: a.usedBytes, messages: mb.messages };
}

Deno.test("maintenance: old and large mail expire, inactive accounts go, bodies are freed", async () => {
  let clock = Date.UTC(2026, 10, 23, 9, 0, 0);
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    await put(t, user.address, 1000, clock - 21 * DAY); // older than 20 days
    await put(t, user.address, 300_000, clock - 8 * DAY); // large, older than 7 days
    await put(t, user.address, 300_000, clock - 1 * DAY); // large but recent
    await put(t, user.address, 1000, clock); // fresh
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    await client.login(user.address, user.password);
    await client.cmd("SELECT INBOX");
    const m = t.relay.maintenance;
    assert.equal(await m.run("expire-mail"), "1 messages deleted");
    assert.equal(await m.run("expire-large"), "1 messages deleted");
    assert.deepEqual((await client.cmd("NOOP")).untagged, ["* 2 EXPUNGE", "* 1 EXPUNGE"]);
    client.close();
    const after = await usage(t, user.address);
    assert.equal(after.messages, 2);
    assert.ok(after.used < 310_000 && after.used > 300_000, String(after.used));
    assert.match(await m.run("free-bodies"), /^\d+ bodies freed$/);

    const idle = await createAccount(t, "bobby0001");
    clock += 91 * DAY;
    await t.relay.services.accounts.authenticate(user.address, user.password);
    assert.equal(await m.run("expire-accounts"), "1 accounts deleted");
    assert.equal(await t.relay.services.store.getAccount(idle.address), null);
    assert.ok(await t.relay.services.store.getAccount(user.address));
  }, { relay: { now: () => clock, manualQueue: true } });
});

Deno.test("maintenance: past 75 % of quota the oldest mail goes down to 70 %, never the last day's", async () => {
  const clock = Date.UTC(2026, 10, 23, 9, 0, 0);
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const quota = 1_000_000;
    for (let i = 0; i < 8; i++) await put(t, user.address, 100_000, clock - (10 - i) * DAY);
    assert.equal(
      await t.relay.maintenance.trimQuota(
        (await t.relay.services.store.getAccount(user.address))!.id,
      ),
      1,
    );
    let u = await usage(t, user.address);
    assert.ok(u.used <= quota * 0.7, `used ${u.used}`);
    // Past 75 % again with two messages from the last hour: old mail goes, the young stays.
    for (let i = 0; i < 2; i++) await put(t, user.address, 100_000, clock - 3600_000);
    assert.equal(await t.relay.maintenance.run("quota-trim"), "2 messages deleted in 1 accounts");
    u = await usage(t, user.address);
    assert.ok(u.used <= quota * 0.7, `used ${u.used}`);
    const account = (await t.relay.services.store.getAccount(user.address))!;
    const mb = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
    const left = await t.relay.services.store.listMessages(mb.id);
    assert.equal(left.filter((m) => m.internalDate === clock - 3600_000).length, 2);
    // A mailbox full of the last day's mail is left alone.
    const busy = await createAccount(t, "bobby0001");
    for (let i = 0; i < 8; i++) await put(t, busy.address, 100_000, clock - 3600_000);
    const busyId = (await t.relay.services.store.getAccount(busy.address))!.id;
    assert.equal(await t.relay.maintenance.trimQuota(busyId), 0);
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    await client.login(user.address, user.password);
    const q = await client.cmd("GETQUOTAROOT INBOX");
    assert.equal(
      q.untagged[1],
      `* QUOTA "User quota" (STORAGE ${Math.ceil(u.used / 1024)} ${Math.ceil(quota / 1024)})`,
    );
    client.close();
  }, {
    overrides: { max_mailbox_size: 1_000_000 },
    relay: { now: () => clock, manualQueue: true },
  });
});
