// The holes of issue 15 against a running relay over SMTP: port 25 anonymous (a remote sender on
// an IP-literal domain, which needs no DKIM, as at the reference relay), 465 and 587 logged in.
// Each is refused with the reference's reply, or accepted where the reference accepts; nothing
// refused reaches an inbox.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { ONE_READING_CASES } from "../src/policy/testdata/one_reading_cases.ts";

async function inboxCount(t: TestRelay, address: string): Promise<number> {
  const store = t.relay.services.store;
  const account = await store.getAccount(address);
  const mb = account ? await store.getMailbox(account.id, "INBOX") : null;
  return mb ? (await store.listMessages(mb.id)).length : 0;
}

async function submission(
  t: TestRelay,
  port: 465 | 587,
  user: { address: string; password: string },
) {
  const c = port === 465
    ? await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem })
    : await SmtpTestClient.connect(t.addr("submission"));
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd("EHLO client.test")).code, 250);
  if (port === 587) {
    await c.startTls(t.caPem);
    assert.equal((await c.cmd("EHLO client.test")).code, 250);
  }
  assert.equal((await c.login(user.address, user.password)).code, 235);
  return c;
}

/** Port 25 as a relay uses it: STARTTLS first (the reference requires it there). */
async function inbound(t: TestRelay) {
  const c = await SmtpTestClient.connect(t.addr("smtp"));
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
  await c.startTls(t.caPem);
  assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
  return c;
}

Deno.test("gate over SMTP: every hole of issue 15 gets the reference's reply on 25, 465 and 587", async (t) => {
  await withRelay(async (relay) => {
    const self = await createAccount(relay, "alice0001");
    const other = await createAccount(relay, "bobby0001");
    const remote = "sender001@[127.0.0.8]";
    let expected = 0;
    for (const c of ONE_READING_CASES) {
      const ports: (25 | 465 | 587)[] = c.direction === "incoming" ? [25] : [465, 587];
      for (const port of ports) {
        await t.step(`port ${port}, item ${c.item}: ${c.name}`, async () => {
          const sender = port === 25 ? remote : self.address;
          const message = c.build({ self: sender, other: other.address, to: other.address });
          const client = port === 25 ? await inbound(relay) : await submission(relay, port, self);
          const r = await client.sendMail(sender, [other.address], message);
          client.close();
          assert.equal(r.code, c.expect.code, r.text);
          if (c.expect.text) {
            assert.match(r.text, c.expect.text);
          }
          if (r.code === 250) expected++;
          assert.equal(
            await inboxCount(relay, other.address),
            expected,
            "stored only when accepted",
          );
        });
      }
    }
  }, { overrides: { max_user_send_burst_size: 100 } });
});
