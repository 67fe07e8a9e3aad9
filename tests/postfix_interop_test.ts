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
      // Postfix listens on loopback, which outbound delivery refuses unless allowed.
      overrides: { domain: "tern.test", outbound_allow_private: true },
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

/** Files in a Maildir's new/ and cur/. */
async function maildirFiles(maildir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["new", "cur"]) {
    for (const e of await Array.fromAsync(Deno.readDir(`${maildir}/${sub}`)).catch(() => [])) {
      out.push(`${maildir}/${sub}/${e.name}`);
    }
  }
  return out;
}

Deno.test({
  name: need.title(
    "tern delivers a burst to Postfix over few pipelined sessions, and a 1.5 MB message streamed from the store",
  ),
  ignore: need.ignore,
  async fn() {
    const ports = { smtp: 1, https: 1 };
    const caCerts: string[] = [];
    await withRelay(async (t) => {
      const bob = await createAccount(t, "bobby0001");
      const rs = await startRefStack({
        transports: { "tern.test": `smtp:[127.0.0.1]:${t.addr("smtp").port}` },
      });
      try {
        ports.smtp = rs.ports.smtp;
        caCerts.push(rs.caPem);
        await rs.addUsers([{ address: "alice@ref.test", password: "alicepass123" }]);
        const c = await SmtpTestClient.connect(t.addr("submissions"), {
          tls: true,
          caPem: t.caPem,
        });
        await c.reply();
        await c.cmd("EHLO client.test");
        await c.login(bob.address, bob.password);
        const burst = 30;
        const big = Array.from({ length: 30_000 }, (_, i) => `.l${i} ${"y".repeat(i % 53)}`)
          .join("\n");
        const bigMessage = await encryptedMessage(bob.address, "alice@ref.test", big);
        assert.ok(bigMessage.length > 1_000_000);
        const small = await encryptedMessage(bob.address, "alice@ref.test");
        for (let i = 0; i < burst; i++) {
          const r = await c.sendMail(bob.address, ["alice@ref.test"], i === 0 ? bigMessage : small);
          assert.equal(r.code, 250, r.text);
        }
        c.close();
        const maildir = rs.maildir("alice@ref.test");
        const until = Date.now() + 60_000;
        let files: string[] = [];
        while (Date.now() < until) {
          files = await maildirFiles(maildir);
          if (files.length >= burst) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        const log = rs.log().postfix;
        assert.equal(files.length, burst, `not all delivered; postfix log:\n${log.slice(-3000)}`);
        // The large one arrived byte for byte (after tern's DKIM-Signature and Postfix's
        // Received/Return-Path lines).
        const armor = (m: string) => m.slice(m.indexOf("-----BEGIN PGP MESSAGE-----"));
        const bodies = await Promise.all(files.map(async (f) => {
          let raw: Uint8Array = await Deno.readFile(f);
          if (raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipSync(raw);
          return dec.decode(raw);
        }));
        const bigOne = bodies.find((b) => b.length > 1_000_000);
        assert.ok(bigOne, "the large message is there");
        assert.equal(armor(bigOne.replace(/\r?\n/g, "\r\n")), armor(bigMessage));
        // Sessions are reused: Postfix saw far fewer connections on port 25 than messages, and
        // no complaint about the pipelined commands.
        const connects = log.split("\n").filter((l) =>
          /postfix\/smtp\/smtpd\[\d+\]: connect from/.test(l)
        ).length;
        assert.ok(connects >= 1 && connects <= burst / 3, `${connects} connections for ${burst}`);
        assert.ok(!/improper command pipelining/.test(log), "Postfix accepted the pipelining");
        // Postfix answered each 250 before it delivered to the maildir: tern's queue is empty.
        assert.equal(await t.relay.services.store.countQueued(), 0);
      } finally {
        await rs.stop();
      }
    }, {
      overrides: {
        domain: "tern.test",
        outbound_allow_private: true,
        max_user_send_per_minute: 6000,
        max_user_send_burst_size: 100,
      },
      relay: {
        dns: fakeDns({
          mx: { "ref.test": [{ preference: 10, exchange: "ref.test" }] },
          addresses: { "ref.test": ["127.0.0.1"] },
        }),
        federation: { ports, caCerts },
      },
    });
  },
});
