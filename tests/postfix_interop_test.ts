// Real Postfix (Debian, run by scripts/refstack) relays a message into tern's port 25: the
// foreign MTA path a federated message takes when it arrives by SMTP; and tern delivers to it.
// Needs root, as Postfix does.

import assert from "node:assert/strict";
import { createAccount, fakeDns, withRelay } from "./support/relay.ts";
import {
  DKIM_SELECTOR,
  dkimDnsRecord,
  generateDkimKey,
  signMessage,
  verifyAlignedSignature,
} from "../src/federation/mod.ts";
import { dkimKey } from "../src/app/federation.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { gunzipSync } from "node:zlib";
import { encryptedMessage } from "./support/messages.ts";
import { requireAll, requireTool } from "./support/tools.ts";
import { type RefStack, refStackNeed, startRefStack } from "../scripts/refstack/refstack.ts";

const need = requireAll(refStackNeed, requireTool("swaks"));
const dec = new TextDecoder();
// ref.test's DKIM key: the message is signed before Postfix relays it (the refstack has no
// OpenDKIM), and tern looks the key up through the injected resolver.
const REF_KEY = generateDkimKey();

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test({
  name: need.title("Postfix relays into tern's port 25, and receives DKIM-signed mail from tern"),
  ignore: need.ignore,
  async fn() {
    // Postfix routes tern.test to tern's port 25, which is only known once tern runs; tern's
    // route to ref.test is Postfix's port, only known once Postfix runs: tern starts first and
    // reads the port from here when it delivers.
    const ports = { smtp: 1, https: 1 };
    const caCerts: string[] = [];
    await withRelay(async (t) => {
      const bob = await createAccount(t, "bobby0001");
      const dir = await Deno.makeTempDir({ prefix: "tern-postfix-" });
      let rs: RefStack | null = null;
      try {
        rs = await startRefStack({
          transports: { "tern.test": `smtp:[127.0.0.1]:${t.addr("smtp").port}` },
        });
        ports.smtp = rs.ports.smtp;
        caCerts.push(rs.caPem);
        await rs.addUsers([{ address: "alice@ref.test", password: "alicepass123" }]);
        const file = `${dir}/message.eml`;
        const message = new TextEncoder().encode(
          await encryptedMessage("alice@ref.test", bob.address),
        );
        await Deno.writeFile(
          file,
          await signMessage(message, "ref.test", {
            selector: DKIM_SELECTOR,
            privateKeyPem: REF_KEY,
          }),
        );
        const sent = await run("swaks", [
          "--server",
          "127.0.0.1",
          "--port",
          String(rs.ports.submissions),
          "--tls-on-connect",
          "--auth",
          "PLAIN",
          "--auth-user",
          "alice@ref.test",
          "--auth-password",
          "alicepass123",
          "--from",
          "alice@ref.test",
          "--to",
          bob.address,
          "--data",
          `@${file}`,
        ]);
        assert.equal(sent.code, 0, sent.output);
        const account = (await t.relay.services.store.getAccount(bob.address))!;
        const deadline = Date.now() + 30_000;
        let messages = 0;
        while (Date.now() < deadline) {
          messages = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!.messages;
          if (messages > 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(messages, 1, `not delivered; postfix log:\n${rs.log().postfix.slice(-3000)}`);
        const mb = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
        const [m] = await t.relay.services.store.listMessages(mb.id);
        const stored = dec.decode((await t.relay.services.store.readBody(m.bodyId))!);
        assert.ok(!/^Received:/im.test(stored.split("\r\n\r\n")[0]), "Received stripped");
        assert.match(stored, /^From: <alice@ref\.test>/m);

        // The other way: tern delivers to Postfix (MX ref.test, no /mxdeliv there), signed.
        const c = await SmtpTestClient.connect(t.addr("submissions"), {
          tls: true,
          caPem: t.caPem,
        });
        await c.reply();
        await c.cmd("EHLO client.test");
        await c.login(bob.address, bob.password);
        const out = await c.sendMail(
          bob.address,
          ["alice@ref.test"],
          await encryptedMessage(bob.address, "alice@ref.test"),
        );
        c.close();
        assert.equal(out.code, 250, out.text);
        const maildir = rs.maildir("alice@ref.test");
        const delivered = await (async () => {
          const until = Date.now() + 30_000;
          while (Date.now() < until) {
            for (const sub of ["new", "cur"]) {
              for (
                const e of await Array.fromAsync(Deno.readDir(`${maildir}/${sub}`)).catch(() => [])
              ) {
                return `${maildir}/${sub}/${e.name}`;
              }
            }
            await new Promise((r) => setTimeout(r, 200));
          }
          const [q] = (await t.relay.services.store.listQueue({})).items;
          throw new Error(`not delivered to Postfix: ${JSON.stringify(q?.recipients)}`);
        })();
        let raw: Uint8Array = await Deno.readFile(delivered);
        if (raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipSync(raw);
        assert.match(dec.decode(raw), /^DKIM-Signature: .*d=tern\.test/ms);
        const verified = await verifyAlignedSignature(
          raw,
          "tern.test",
          fakeDns({
            txt: {
              [`${DKIM_SELECTOR}._domainkey.tern.test`]: [
                dkimDnsRecord(dkimKey(t.relay.config).privateKeyPem),
              ],
            },
          }),
        );
        assert.equal(verified, null, "the DKIM signature verifies after Postfix and Dovecot");
      } finally {
        await rs?.stop();
        await Deno.remove(dir, { recursive: true });
      }
    }, {
      overrides: { domain: "tern.test" },
      relay: {
        dns: fakeDns({
          txt: { [`${DKIM_SELECTOR}._domainkey.ref.test`]: [dkimDnsRecord(REF_KEY)] },
          mx: { "ref.test": [{ preference: 10, exchange: "ref.test" }] },
          addresses: { "ref.test": ["127.0.0.1"] },
        }),
        federation: { ports, caCerts },
      },
    });
  },
});
