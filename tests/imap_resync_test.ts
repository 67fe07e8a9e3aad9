// Resync when the store no longer has the expunge tombstones a client's modseq would need (they
// are purged after a horizon, issue 22): QRESYNC answers with a conservative VANISHED (every UID
// below UIDNEXT that is not there, RFC 7162 §3.2.5.2) and a selected session finds its expunges
// by comparing its view with the mailbox.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { Db } from "../src/store/sqlite/mod.ts";

const enc = new TextEncoder();

async function session(t: TestRelay, user: { address: string; password: string }) {
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
  assert.ok((await client.login(user.address, user.password)).ok);
  return client;
}

/** Forgets the tombstones of `uids` (as the purge does) and sets the horizon past them. */
function purge(t: TestRelay, uids: number[], horizon: number) {
  const db = new Db(t.relay.services.sqlite!.db.path);
  try {
    for (const u of uids) db.run("DELETE FROM expunged WHERE uid = ?", u);
  } finally {
    db.close();
  }
  const service = t.relay.services.mailboxes;
  const real = service.mailboxState;
  service.mailboxState = async (id) => {
    const s = await real(id);
    return s && { ...s, expungeHorizonModSeq: horizon };
  };
}

async function fill(t: TestRelay, address: string, n: number) {
  const account = (await t.relay.services.store.getAccount(address))!;
  for (let i = 1; i <= n; i++) {
    await t.relay.services.mailboxes.append({
      accountId: account.id,
      mailboxName: "INBOX",
      data: enc.encode(`Subject: ${i}\r\n\r\nx\r\n`),
      flags: [],
    });
  }
}

Deno.test("QRESYNC from before the tombstone horizon: conservative VANISHED", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "resync001");
    await fill(t, user.address, 6);
    const client = await session(t, user);
    await client.cmd("ENABLE QRESYNC");
    const sel = await client.cmd("SELECT INBOX");
    const validity = /UIDVALIDITY (\d+)/.exec(sel.untagged.join(" "))![1];
    const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.untagged.join(" "))![1]);
    await client.cmd("UNSELECT");
    const other = await session(t, user);
    await other.cmd("SELECT INBOX");
    await other.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)");
    await other.cmd("EXPUNGE");
    other.close();
    // The tombstone of 4 is gone: only the conservative answer can still name it.
    purge(t, [4], modseq + 1000);
    const re = await client.cmd(`SELECT INBOX (QRESYNC (${validity} ${modseq} 1:6))`);
    assert.ok(re.untagged.includes("* VANISHED (EARLIER) 2,4"), re.untagged.join("|"));
    const fetched = await client.cmd(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq} VANISHED)`);
    assert.ok(fetched.untagged.includes("* VANISHED (EARLIER) 2,4"), fetched.untagged.join("|"));
    client.close();
  });
});

Deno.test("a session older than the tombstone horizon finds its expunges by comparison", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "resync002");
    await fill(t, user.address, 5);
    const watcher = await session(t, user);
    const sel = await watcher.cmd("SELECT INBOX");
    const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.untagged.join(" "))![1]);
    const other = await session(t, user);
    await other.cmd("SELECT INBOX");
    await other.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)");
    await other.cmd("EXPUNGE");
    other.close();
    purge(t, [3], modseq + 1000);
    const noop = await watcher.cmd("NOOP");
    assert.ok(noop.untagged.includes("* 3 EXPUNGE"), noop.untagged.join("|"));
    assert.deepEqual((await watcher.cmd("UID SEARCH ALL")).untagged, ["* SEARCH 1 2 4 5"]);
    watcher.close();
  });
});
