// Delta Chat core generations still in use against one tern: the newest release, one around
// 2.30 and one 1.x from 2025, each meeting the 2.57 core most tests use. Per generation: account
// creation from /new, Secure-Join and 1:1 chat both ways, a group of three, a second device of the
// same account, a file, and the relay's METADATA and capabilities as the client reads them.
//
// Push tokens: cores take them only from the platform (the C API on iOS/Android); JSON-RPC has no
// call for it, so token registration is tested with the exact SETMETADATA bytes Delta Chat sends
// (tests/wire_compat_test.ts).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { newAccount, startTern } from "./support/tern_process.ts";
import { Device, secureJoin } from "./support/deltachat.ts";
import { type CoreName, CORES } from "./support/deltachat_cores.ts";
import { freePort } from "./support/ports.ts";

const MSG_TIMEOUT = 45_000;

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

const MATRIX: CoreName[] = ["2.62", "2.33", "1.160"];

for (const name of MATRIX) {
  const core = CORES[name];
  Deno.test({
    name:
      `Delta Chat core ${core.version} with 2.57 on tern: accounts, chats, groups, devices, files`,
    // The rpc clients keep their event loops and child processes alive between steps; all are
    // stopped in `finally`.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const turnPort = await freePort({ udp: true });
      const tern = await startTern([
        `turn_port = ${turnPort}`,
        "max_user_send_per_minute = 6000",
        "max_user_send_burst_size = 100",
      ].join("\n"));
      const devices: Device[] = [];
      const device = async (who: string, c = core) => {
        const d = await Device.start(`${who}-${c.version}`, { core: c });
        devices.push(d);
        return d;
      };
      const files = await Deno.makeTempDir({ prefix: "tern-matrix-" });
      const step = async (label: string, ms: number, fn: () => Promise<void>) => {
        const ok = await t.step(label, () => within(ms, label, fn()));
        if (!ok) {
          console.log(
            `matrix ${core.version} ${label}: FAILED\ntern log:\n${tern.stderr().slice(-15000)}\n${
              devices.map((d) => `--- ${d.name}\n${d.log()}`).join("\n")
            }`,
          );
        }
        return ok;
      };
      try {
        let alice!: Device, bob!: Device, carol!: Device;
        let chats!: { inviterChat: number; joinerChat: number };
        await step("account creation from /new (dclogin QR)", 90_000, async () => {
          alice = await device("alice");
          await alice.configureFromQr((await newAccount(tern)).dclogin_url);
          bob = await device("bob", CORES["2.57"]);
          await bob.configureFromQr((await newAccount(tern)).dclogin_url);
          carol = await device("carol");
          await carol.configureFromQr((await newAccount(tern)).dclogin_url);
          for (const d of [alice, bob, carol]) {
            assert.match(d.address, /@\[127\.0\.0\.1\]$/);
            // The core saw XCHATMAIL and treats tern as a chatmail relay (cores that report it).
            const info = await d.rpc.getInfo(d.accountId);
            if ("is_chatmail" in info) assert.equal(info.is_chatmail, "true", d.name);
          }
        });

        await step("Secure-Join with a 2.57 core, then 1:1 both ways", 90_000, async () => {
          chats = await secureJoin(alice, bob, 60_000);
          await alice.rpc.miscSendTextMessage(alice.accountId, chats.inviterChat, "hi from old");
          const m = await bob.waitForText("hi from old", MSG_TIMEOUT);
          assert.ok(m.showPadlock, "encrypted");
          await bob.rpc.miscSendTextMessage(bob.accountId, chats.joinerChat, "hi from 2.57");
          await alice.waitForText("hi from 2.57", MSG_TIMEOUT);
        });

        await step("group of three across generations", 120_000, async () => {
          const ac = await secureJoin(alice, carol, 60_000);
          const group = await alice.rpc.createGroupChat(alice.accountId, "matrix", false);
          for (const chat of [chats.inviterChat, ac.inviterChat]) {
            const [contact] = await alice.rpc.getChatContacts(alice.accountId, chat);
            await alice.rpc.addContactToChat(alice.accountId, group, contact);
          }
          await alice.rpc.miscSendTextMessage(alice.accountId, group, "group from alice");
          const atBob = await bob.waitForText("group from alice", MSG_TIMEOUT);
          const atCarol = await carol.waitForText("group from alice", MSG_TIMEOUT);
          await bob.rpc.acceptChat(bob.accountId, atBob.chatId);
          await carol.rpc.acceptChat(carol.accountId, atCarol.chatId);
          await bob.rpc.miscSendTextMessage(bob.accountId, atBob.chatId, "group from bob");
          await alice.waitForText("group from bob", MSG_TIMEOUT);
          await carol.waitForText("group from bob", MSG_TIMEOUT);
        });

        await step("a file arrives byte for byte", 120_000, async () => {
          const path = `${files}/file.bin`;
          const data = new Uint8Array(1_000_000);
          for (let i = 0; i < data.length; i += 65536) {
            crypto.getRandomValues(data.subarray(i, Math.min(data.length, i + 65536)));
          }
          await Deno.writeFile(path, data);
          await alice.rpc.sendMsg(alice.accountId, chats.inviterChat, {
            text: "a file",
            html: null,
            viewtype: "File",
            file: path,
            filename: "file.bin",
            location: null,
            overrideSenderName: null,
            quotedMessageId: null,
            quotedText: null,
          });
          const got = await bob.waitForText("a file", 90_000);
          assert.ok(got.file, "received a file");
          const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
          assert.equal(digest(await Deno.readFile(got.file!)), digest(data));
        });

        await step(
          "a second device of the same account sees both directions",
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
            await bob.rpc.miscSendTextMessage(bob.accountId, chats.joinerChat, "to both");
            await alice.waitForText("to both", MSG_TIMEOUT);
            await alice2.waitForText("to both", MSG_TIMEOUT);
            await alice.rpc.miscSendTextMessage(alice.accountId, chats.inviterChat, "from one");
            await bob.waitForText("from one", MSG_TIMEOUT);
            const copy = await alice2.waitForText("from one", MSG_TIMEOUT);
            assert.equal(copy.fromId, 1, "the other device shows it as its own message");
          },
        );

        await step("the client read the relay's METADATA", 30_000, () => {
          // Every generation asks for the server entries (TURN, iroh relay, limits) on connect.
          const asked = tern.stderr().split("\n").filter((l) =>
            l.includes('"msg":"imap command"') && l.includes('"command":"GETMETADATA"')
          );
          assert.ok(asked.length > 0, "GETMETADATA seen");
          return Promise.resolve();
        });
      } finally {
        for (const d of devices) await d.stop();
        await tern.stop();
        await Deno.remove(files, { recursive: true }).catch(() => {});
      }
    },
  });
}

// The TURN entry is what 2.57+ cores turn into ICE servers for calls: check it end to end.
Deno.test({
  name: "Delta Chat 2.62 turns METADATA /shared/vendor/deltachat/turn into ICE servers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const turnPort = await freePort({ udp: true });
    const tern = await startTern(`turn_port = ${turnPort}`);
    const d = await Device.start("ice-2.62", { core: CORES["2.62"] });
    try {
      await d.configureFromQr((await newAccount(tern)).dclogin_url);
      let servers = "";
      for (let i = 0; i < 40 && !servers.includes(String(turnPort)); i++) {
        servers = await d.rpc.iceServers(d.accountId);
        if (!servers.includes(String(turnPort))) {
          await d.waitFor("Info", () => true, 500).catch(() => {});
        }
      }
      const list = JSON.parse(servers) as { urls: string | string[]; username?: string }[];
      const ours = list.find((s) => [s.urls].flat().some((u) => u.includes(`:${turnPort}`)));
      assert.ok(ours, servers);
      assert.ok(ours.username, "TURN credentials from the relay");
    } finally {
      await d.stop();
      await tern.stop();
    }
  },
});
