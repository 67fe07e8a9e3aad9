// The acceptance suite: real Delta Chat cores (deltachat-rpc-server 2.57) against a real tern
// process on loopback with self-signed TLS and the IP-literal domain 127.0.0.1. Each scenario
// has its own time limit; every process started here is stopped in `finally`.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type NewAccount,
  newAccount,
  startTern,
  type TernProcess,
} from "./support/tern_process.ts";
import { Device, percentile, secureJoin } from "./support/deltachat.ts";
import { requireAll, type Requirement, requireTool } from "./support/tools.ts";

const MSG_TIMEOUT = 30_000;
const dec = new TextDecoder();

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

function log(line: string) {
  console.log(`e2e ${line}`);
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

async function writeRandomFile(dir: string, name: string, size: number): Promise<string> {
  const path = `${dir}/${name}`;
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(data.subarray(off, Math.min(size, off + 65536)));
  }
  await Deno.writeFile(path, data);
  return path;
}

async function swaksPlain(tern: TernProcess, from: NewAccount, to: string) {
  const out = await new Deno.Command("swaks", {
    args: [
      "--server",
      "127.0.0.1",
      "--port",
      String(tern.port("submissions")),
      "--tls-on-connect",
      "--auth",
      "PLAIN",
      "--auth-user",
      from.email,
      "--auth-password",
      from.password,
      "--from",
      from.email,
      "--to",
      to,
      "--header",
      "Subject: plain",
      "--body",
      "unencrypted-hello",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test({
  name: "Delta Chat end to end: nine scenarios with real clients",
  // The rpc client keeps its event loop and child processes alive between steps; everything is
  // stopped in the finally block below.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const tern = await startTern([
      // 25 MB files become ~45 MB of armored PGP/MIME; the oversize case uses 40 MB.
      'max_message_size = "48M"',
      // The burst scenario sends 50 messages at once; the rate limit has its own SMTP test.
      "max_user_send_per_minute = 6000",
      "max_user_send_burst_size = 100",
    ].join("\n"));
    const devices: Device[] = [];
    const device = async (name: string) => {
      const d = await Device.start(name);
      devices.push(d);
      return d;
    };
    const files = await Deno.makeTempDir({ prefix: "tern-e2e-files-" });
    let alice!: Device, bob!: Device, carol!: Device;
    let aliceAccount!: NewAccount;
    let aliceBob!: { inviterChat: number; joinerChat: number };
    const step = async (
      name: string,
      ms: number,
      fn: () => Promise<void>,
      need: Requirement = requireAll(),
    ) => {
      const started = performance.now();
      const ok = await t.step({
        name: need.title(name),
        ignore: need.ignore,
        fn: () => within(ms, name, fn()),
      });
      if (need.ignore) return ok;
      if (ok) log(`${name}: ok (${Math.round(performance.now() - started)} ms)`);
      else {log(`${name}: FAILED\ntern log:\n${tern.stderr().slice(-20000)}\n${
          devices.map((d) => `--- ${d.name}\n${d.log()}`).join("\n")
        }`);}
      return ok;
    };
    try {
      const server = { imapPort: tern.port("imaps"), smtpPort: tern.port("submissions") };
      await step(
        "1 account creation via /new and dclogin, wrong password refused",
        60_000,
        async () => {
          aliceAccount = await newAccount(tern);
          alice = await device("alice");
          await alice.configure(server, aliceAccount.email, aliceAccount.password);
          bob = await device("bob");
          await bob.configureFromQr((await newAccount(tern)).dclogin_url);
          assert.match(bob.address, /@\[127\.0\.0\.1\]$/);
          carol = await device("carol");
          await carol.configureFromQr((await newAccount(tern)).dclogin_url);
          const mallory = await device("mallory");
          await assert.rejects(
            mallory.configure(server, aliceAccount.email, aliceAccount.password + "x"),
          );
        },
      );

      await step("2 Secure-Join gives a verified, encrypted 1:1 chat", 60_000, async () => {
        aliceBob = await secureJoin(alice, bob, 45_000);
        const chatA = await alice.rpc.getBasicChatInfo(alice.accountId, aliceBob.inviterChat);
        const chatB = await bob.rpc.getBasicChatInfo(bob.accountId, aliceBob.joinerChat);
        assert.ok(chatA.isEncrypted && chatB.isEncrypted, "chats are encrypted");
        const contactsOfA = await alice.rpc.getChatContacts(alice.accountId, aliceBob.inviterChat);
        const bobAtA = await alice.rpc.getContact(alice.accountId, contactsOfA[0]);
        assert.ok(bobAtA.isVerified, "bob is verified at alice");
        const contactsOfB = await bob.rpc.getChatContacts(bob.accountId, aliceBob.joinerChat);
        const aliceAtB = await bob.rpc.getContact(bob.accountId, contactsOfB[0]);
        assert.ok(aliceAtB.isVerified, "alice is verified at bob");
      });

      await step("3 text A to B and reply B to A", 60_000, async () => {
        let t0 = performance.now();
        await alice.rpc.miscSendTextMessage(alice.accountId, aliceBob.inviterChat, "hello bob");
        const m1 = await bob.waitForText("hello bob", MSG_TIMEOUT);
        const ab = performance.now() - t0;
        assert.ok(m1.showPadlock, "encrypted");
        t0 = performance.now();
        await bob.rpc.miscSendTextMessage(bob.accountId, aliceBob.joinerChat, "hello alice");
        await alice.waitForText("hello alice", MSG_TIMEOUT);
        const ba = performance.now() - t0;
        // Steady state: one message at a time, each after the previous arrived, spaced by more
        // than Delta Chat's own send pacing (about one message per second after a burst of 3),
        // so the figure is the relay's path, not the client's wait.
        const steady: number[] = [];
        for (let i = 0; i < 5; i++) {
          await new Promise((r) => setTimeout(r, 1100));
          const s0 = performance.now();
          await alice.rpc.miscSendTextMessage(alice.accountId, aliceBob.inviterChat, `steady ${i}`);
          await bob.waitForText(`steady ${i}`, MSG_TIMEOUT);
          steady.push(performance.now() - s0);
        }
        log(
          `latency first A->B ${Math.round(ab)} ms, B->A ${Math.round(ba)} ms, ` +
            `steady A->B median ${Math.round(percentile(steady, 50))} ms`,
        );
      });

      await step("4 group of three: every member gets every message", 120_000, async () => {
        const aliceCarol = await secureJoin(alice, carol, 45_000);
        const group = await alice.rpc.createGroupChat(alice.accountId, "trio", false);
        // Members of an encrypted group are the key contacts Secure-Join verified.
        for (const chat of [aliceBob.inviterChat, aliceCarol.inviterChat]) {
          const [contact] = await alice.rpc.getChatContacts(alice.accountId, chat);
          await alice.rpc.addContactToChat(alice.accountId, group, contact);
        }
        await alice.rpc.miscSendTextMessage(alice.accountId, group, "group hello from alice");
        const atBob = await bob.waitForText("group hello from alice", MSG_TIMEOUT);
        const atCarol = await carol.waitForText("group hello from alice", MSG_TIMEOUT);
        await bob.rpc.acceptChat(bob.accountId, atBob.chatId);
        await carol.rpc.acceptChat(carol.accountId, atCarol.chatId);
        await bob.rpc.miscSendTextMessage(bob.accountId, atBob.chatId, "group hello from bob");
        await carol.rpc.miscSendTextMessage(
          carol.accountId,
          atCarol.chatId,
          "group hello from carol",
        );
        await alice.waitForText("group hello from bob", MSG_TIMEOUT);
        await carol.waitForText("group hello from bob", MSG_TIMEOUT);
        await alice.waitForText("group hello from carol", MSG_TIMEOUT);
        await bob.waitForText("group hello from carol", MSG_TIMEOUT);
      });

      await step(
        "5 files of 1 MB and 25 MB arrive intact; an oversized one is refused",
        240_000,
        async () => {
          for (
            const [name, size] of [["one.bin", 1_000_000], ["twentyfive.bin", 25_000_000]] as const
          ) {
            const path = await writeRandomFile(files, name, size);
            const want = await sha256(path);
            await alice.rpc.sendMsg(alice.accountId, aliceBob.inviterChat, {
              text: `file ${name}`,
              html: null,
              viewtype: "File",
              file: path,
              filename: name,
              location: null,
              overrideSenderName: null,
              quotedMessageId: null,
              quotedText: null,
            });
            const got = await bob.waitForText(`file ${name}`, 120_000);
            assert.ok(got.file, "received a file");
            assert.equal(await sha256(got.file!), want, `${name} is byte-identical`);
          }
          const big = await writeRandomFile(files, "forty.bin", 40_000_000);
          const id = await alice.rpc.sendMsg(alice.accountId, aliceBob.inviterChat, {
            text: "file forty.bin",
            html: null,
            viewtype: "File",
            file: big,
            filename: "forty.bin",
            location: null,
            overrideSenderName: null,
            quotedMessageId: null,
            quotedText: null,
          });
          await alice.waitFor(
            "MsgFailed",
            (e) => e.msgId === id,
            120_000,
            "the oversized message to fail",
          );
          const failed = await alice.rpc.getMessage(alice.accountId, id);
          assert.match(failed.error ?? "", /552|size/i, failed.error ?? "");
          // Nothing partial reaches the recipient: it would arrive before a message sent after.
          await alice.rpc.miscSendTextMessage(alice.accountId, aliceBob.inviterChat, "after forty");
          await bob.waitForText("after forty", MSG_TIMEOUT);
          assert.equal(await bob.findText("file forty.bin"), null);
        },
      );

      await step(
        "6 a message sent while B is offline arrives when B starts again",
        60_000,
        async () => {
          await bob.rpc.stopIo(bob.accountId);
          const id = await alice.rpc.miscSendTextMessage(
            alice.accountId,
            aliceBob.inviterChat,
            "while you were away",
          );
          // The relay took it (250) while B was offline.
          await alice.waitFor("MsgDelivered", (e) => e.msgId === id, MSG_TIMEOUT, "250 for it");
          await bob.rpc.startIo(bob.accountId);
          await bob.waitForText("while you were away", MSG_TIMEOUT);
        },
      );

      await step(
        "7 two devices of one account see incoming and outgoing messages",
        120_000,
        async () => {
          const backupDir = `${files}/backup`;
          await Deno.mkdir(backupDir);
          await alice.rpc.stopIo(alice.accountId);
          await alice.rpc.exportBackup(alice.accountId, backupDir, null);
          await alice.rpc.startIo(alice.accountId);
          const [backup] = [...Deno.readDirSync(backupDir)].map((e) => `${backupDir}/${e.name}`);
          const alice2 = await device("alice2");
          await alice2.rpc.importBackup(alice2.accountId, backup, null);
          await alice2.rpc.setConfig(alice2.accountId, "bcc_self", "1");
          await alice2.startIo();
          await bob.rpc.miscSendTextMessage(bob.accountId, aliceBob.joinerChat, "to both devices");
          await alice.waitForText("to both devices", MSG_TIMEOUT);
          await alice2.waitForText("to both devices", MSG_TIMEOUT);
          await alice.rpc.miscSendTextMessage(
            alice.accountId,
            aliceBob.inviterChat,
            "sent from device one",
          );
          await bob.waitForText("sent from device one", MSG_TIMEOUT);
          const copy = await alice2.waitForText("sent from device one", MSG_TIMEOUT);
          assert.equal(copy.fromId, 1, "device two shows it as its own outgoing message");
        },
      );

      await step(
        "8 unencrypted mail from swaks is refused with 523 and never arrives",
        60_000,
        async () => {
          const r = await swaksPlain(tern, aliceAccount, bob.address);
          assert.notEqual(r.code, 0);
          assert.match(r.output, /523 Encryption Needed: Invalid Unencrypted Mail/);
          // Had it been stored, it would arrive before a message sent after it.
          await alice.rpc.miscSendTextMessage(alice.accountId, aliceBob.inviterChat, "after swaks");
          await bob.waitForText("after swaks", MSG_TIMEOUT);
          assert.equal(await bob.findText("unencrypted-hello"), null);
        },
        requireTool("swaks"),
      );

      await step("9 burst of 50 messages: none lost, none duplicated", 180_000, async () => {
        const sentAt = new Map<string, number>();
        const latencies: number[] = [];
        const seen = new Map<string, number>();
        const emitter = bob.dc.getContextEvents(bob.accountId);
        const all = new Promise<void>((resolve) => {
          const onMsg = async (e: { msgId: number }) => {
            const m = await bob.rpc.getMessage(bob.accountId, e.msgId);
            if (!m.text?.startsWith("burst ")) return;
            seen.set(m.text, (seen.get(m.text) ?? 0) + 1);
            if (seen.get(m.text) === 1) latencies.push(performance.now() - sentAt.get(m.text)!);
            if (seen.size === 50) {
              emitter.off("IncomingMsg", onMsg as never);
              resolve();
            }
          };
          emitter.on("IncomingMsg", onMsg as never);
        });
        for (let i = 0; i < 50; i++) {
          const text = `burst ${i}`;
          sentAt.set(text, performance.now());
          await alice.rpc.miscSendTextMessage(alice.accountId, aliceBob.inviterChat, text);
        }
        await within(150_000, "all 50 burst messages", all);
        // A duplicate stored by the relay would arrive before a message sent after the burst.
        await alice.rpc.miscSendTextMessage(
          alice.accountId,
          aliceBob.inviterChat,
          "after the burst",
        );
        await bob.waitForText("after the burst", MSG_TIMEOUT);
        const chatMessages = await bob.rpc.getMessageIds(
          bob.accountId,
          aliceBob.joinerChat,
          false,
          false,
        );
        const texts = (await Promise.all(
          chatMessages.map((id) => bob.rpc.getMessage(bob.accountId, id)),
        )).map((m) => m.text).filter((x) => x?.startsWith("burst "));
        assert.equal(texts.length, 50, "no duplicates in the chat");
        assert.equal(new Set(texts).size, 50, "none lost");
        log(
          `burst latency median ${Math.round(percentile(latencies, 50))} ms, p95 ${
            Math.round(percentile(latencies, 95))
          } ms`,
        );
      });
    } finally {
      for (const d of devices) await d.stop();
      await tern.stop();
      await Deno.remove(files, { recursive: true }).catch(() => {});
    }
  },
});
