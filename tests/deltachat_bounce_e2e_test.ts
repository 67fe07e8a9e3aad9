// A real Delta Chat core (2.57) sees a recipient's full mailbox as a failed message: alice writes
// to bob, whose mailbox is full, with a copy to herself (bcc_self); tern takes the message for
// alice's copy and sends her a delivery status notification for bob, which her core reads once
// force_encryption is off (with it on, the default, core drops any unencrypted message unread).

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import { Device, secureJoin } from "./support/deltachat.ts";

/** Delta Chat's MessageState for an outgoing message that failed (OutFailed). */
const OUT_FAILED = 24;

Deno.test({
  name: "Delta Chat: a message to a full mailbox is shown as failed at the sender (bounce)",
  // The rpc clients keep their event loops and child processes alive until stopped below.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withRelay(async (t) => {
      const server = { imapPort: t.addr("imaps").port, smtpPort: t.addr("submissions").port };
      const devices: Device[] = [];
      try {
        const a = await createAccount(t, "alice0001");
        const b = await createAccount(t, "bobby0001");
        const alice = await Device.start("alice");
        devices.push(alice);
        const bob = await Device.start("bob");
        devices.push(bob);
        await alice.configure(server, a.address, a.password);
        await bob.configure(server, b.address, b.password);
        const { inviterChat } = await secureJoin(alice, bob, 60_000);
        // Core 2.57 drops every unencrypted message unread while force_encryption is on (its
        // default: "Fetched unencrypted message, ignoring"), delivery reports included; off, it
        // reads the report.
        await alice.rpc.setConfig(alice.accountId, "force_encryption", "0");
        const store = t.relay.services.store;
        await store.setQuota((await store.getAccount(b.address))!.id, 100);
        const failed = alice.waitFor(
          "MsgFailed",
          () => true,
          60_000,
          "the message to bob to fail",
        );
        const msgId = await alice.rpc.miscSendTextMessage(alice.accountId, inviterChat, "to bob");
        const e = await failed;
        assert.equal(e.msgId, msgId);
        const m = await alice.rpc.getMessage(alice.accountId, msgId);
        assert.equal(m.state, OUT_FAILED);
        const info = await alice.rpc.getMessageInfo(alice.accountId, msgId);
        assert.match(info, /Quota exceeded|mailbox for user is full/i, info);
      } finally {
        for (const d of devices) await d.stop();
      }
    });
  },
});
