// Real Postfix (Debian, run by ../shared/refstack) relays a message into tern's port 25: the
// foreign MTA path a federated message takes when it arrives by SMTP. Needs root, as Postfix does.

import assert from "node:assert/strict";
import { freePort } from "./support/ports.ts";
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

const REFSTACK = new URL("../../shared/refstack/", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();
// ref.test's DKIM key: the message is signed before Postfix relays it (the refstack has no
// OpenDKIM), and tern looks the key up through the injected resolver.
const REF_KEY = generateDkimKey();

async function run(cmd: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test({
  name: "Postfix relays into tern's port 25, and receives DKIM-signed mail from tern",
  ignore: !isRoot,
  async fn() {
    const rsSmtp = await freePort();
    const caCerts: string[] = [];
    await withRelay(async (t) => {
      const bob = await createAccount(t, "bobby0001");
      const dir = await Deno.makeTempDir({ prefix: "tern-refstack-" });
      // Postfix and Dovecot drop privileges and must reach their state directory.
      await Deno.chmod(dir, 0o755);
      const env: Record<string, string> = {
        REFSTACK_DIR: `${dir}/rs`,
        REFSTACK_SMTP_PORT: String(rsSmtp),
        REFSTACK_SUBMISSION_PORT: String(await freePort()),
        REFSTACK_SUBMISSIONS_PORT: String(await freePort()),
        REFSTACK_IMAP_PORT: String(await freePort()),
        REFSTACK_IMAPS_PORT: String(await freePort()),
        REFSTACK_TRANSPORTS: `tern.test=smtp:[127.0.0.1]:${t.addr("smtp").port}`,
      };
      try {
        const started = await run("bash", [`${REFSTACK}start.sh`], env);
        assert.equal(started.code, 0, started.output);
        const added = await run(
          "bash",
          [`${REFSTACK}adduser.sh`, "alice@ref.test", "alicepass123"],
          env,
        );
        assert.equal(added.code, 0, added.output);
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
          env.REFSTACK_SUBMISSIONS_PORT,
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
        ], env);
        assert.equal(sent.code, 0, sent.output);
        const account = (await t.relay.services.store.getAccount(bob.address))!;
        const deadline = Date.now() + 30_000;
        let messages = 0;
        while (Date.now() < deadline) {
          messages = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!.messages;
          if (messages > 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        const log = await Deno.readTextFile(`${dir}/rs/log/postfix.log`).catch(() => "");
        assert.equal(messages, 1, `not delivered; postfix log:\n${log.slice(-3000)}`);
        const mb = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
        const [m] = await t.relay.services.store.listMessages(mb.id);
        const stored = dec.decode((await t.relay.services.store.readBody(m.bodyId))!);
        assert.ok(!/^Received:/im.test(stored.split("\r\n\r\n")[0]), "Received stripped");
        assert.match(stored, /^From: <alice@ref\.test>/m);

        // The other way: tern delivers to Postfix (MX ref.test, no /mxdeliv there), signed.
        caCerts.push(await Deno.readTextFile(`${dir}/rs/tls/cert.pem`));
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
        const maildir = `${dir}/rs/mail/alice@ref.test`;
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
        await run("bash", [`${REFSTACK}stop.sh`, "--purge"], env);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }, {
      overrides: { domain: "tern.test" },
      relay: {
        dns: fakeDns({
          txt: { [`${DKIM_SELECTOR}._domainkey.ref.test`]: [dkimDnsRecord(REF_KEY)] },
          mx: { "ref.test": [{ preference: 10, exchange: "ref.test" }] },
          addresses: { "ref.test": ["127.0.0.1"] },
        }),
        federation: { ports: { smtp: rsSmtp, https: 1 }, caCerts },
      },
    });
  },
});
