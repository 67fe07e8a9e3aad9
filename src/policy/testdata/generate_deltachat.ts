// Regenerates src/policy/testdata/deltachat/*.eml: messages written by the real Delta Chat core
// (deltachat-rpc-server 2.57, the npm package the tests use) while three accounts on an
// in-process tern relay run Secure-Join, a 1:1 chat, a group of three and a 20 KB file transfer.
// Each file is the message exactly as the core submitted it in SMTP DATA (captured before the
// gate judged it), so the gate's tests check what real clients send.
//
//   ./scripts/deno run -A src/policy/testdata/generate_deltachat.ts

import { createAccount, withRelay } from "../../../tests/support/relay.ts";
import { Device, secureJoin } from "../../../tests/support/deltachat.ts";
import type { Envelope } from "../../delivery/mod.ts";

const OUT = new URL("./deltachat/", import.meta.url);
const TIMEOUT = 60_000;

const captured: { login: string; envelope: Envelope; message: Uint8Array }[] = [];

await withRelay(async (t) => {
  const delivery = t.relay.services.delivery;
  const begin = delivery.beginSubmission.bind(delivery);
  delivery.beginSubmission = (login, envelope) => {
    const tx = begin(login, envelope);
    const chunks: Uint8Array[] = [];
    return {
      write: (chunk) => {
        chunks.push(chunk.slice());
        return tx.write(chunk);
      },
      end: () => {
        const message = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) message.set(c, (at += c.length) - c.length);
        captured.push({ login, envelope: structuredClone(envelope), message });
        return tx.end();
      },
      abort: () => tx.abort(),
    };
  };
  const server = { imapPort: t.addr("imaps").port, smtpPort: t.addr("submissions").port };
  const devices: Device[] = [];
  try {
    const names = ["alice", "bobby", "carol"];
    for (const name of names) {
      const account = await createAccount(t, `${name}0001`, `${name}-password-123`);
      const d = await Device.start(name);
      devices.push(d);
      await d.configure(server, account.address, account.password);
    }
    const [alice, bob, carol] = devices;
    const ab = await secureJoin(alice, bob, TIMEOUT);
    await alice.rpc.miscSendTextMessage(alice.accountId, ab.inviterChat, "hello bob");
    await bob.waitForText("hello bob", TIMEOUT);
    await bob.rpc.miscSendTextMessage(bob.accountId, ab.joinerChat, "hello alice");
    await alice.waitForText("hello alice", TIMEOUT);
    const ac = await secureJoin(alice, carol, TIMEOUT);
    const group = await alice.rpc.createGroupChat(alice.accountId, "trio", false);
    for (const chat of [ab.inviterChat, ac.inviterChat]) {
      const [contact] = await alice.rpc.getChatContacts(alice.accountId, chat);
      await alice.rpc.addContactToChat(alice.accountId, group, contact);
    }
    await alice.rpc.miscSendTextMessage(alice.accountId, group, "group hello");
    await bob.waitForText("group hello", TIMEOUT);
    await carol.waitForText("group hello", TIMEOUT);
    const dir = await Deno.makeTempDir({ prefix: "dc-fixture-" });
    const file = `${dir}/file.bin`;
    await Deno.writeFile(file, crypto.getRandomValues(new Uint8Array(20_000)));
    await alice.rpc.sendMsg(alice.accountId, ab.inviterChat, {
      text: "a file",
      html: null,
      viewtype: "File",
      file,
      filename: "file.bin",
      location: null,
      overrideSenderName: null,
      quotedMessageId: null,
      quotedText: null,
    });
    await bob.waitForText("a file", TIMEOUT);
    await Deno.remove(dir, { recursive: true });
  } finally {
    for (const d of devices) await d.stop();
  }
}, { overrides: { max_user_send_burst_size: 100 } });

await Deno.remove(OUT, { recursive: true }).catch(() => {});
await Deno.mkdir(OUT, { recursive: true });
const index: string[] = [];
captured.forEach((c, i) => {
  const name = `${String(i + 1).padStart(2, "0")}.eml`;
  Deno.writeFileSync(new URL(name, OUT), c.message);
  const ct = /^Content-Type: ([^;\r\n]+)/mi.exec(new TextDecoder().decode(c.message))?.[1];
  index.push(
    `| ${name} | ${c.envelope.mailFrom} | ${c.envelope.recipients.length} | ${ct} | ${c.message.length} |`,
  );
});
await Deno.writeTextFile(
  new URL("README.md", OUT),
  [
    "# Messages of the real Delta Chat core",
    "",
    "Written by `src/policy/testdata/generate_deltachat.ts` (deltachat-rpc-server 2.57 on an",
    "in-process tern relay): Secure-Join of two pairs, a 1:1 chat, a group of three and a 20 KB",
    "file. Each file is the DATA the core submitted, before the gate judged it. Regenerate with",
    "`./scripts/deno run -A src/policy/testdata/generate_deltachat.ts`.",
    "",
    "| file | MAIL FROM | recipients | Content-Type | bytes |",
    "| --- | --- | --- | --- | --- |",
    ...index,
    "",
  ].join("\n"),
);
console.log(`${captured.length} messages written to ${OUT.pathname}`);
