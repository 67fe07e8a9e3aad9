// A bad network with real Delta Chat clients (issue 16): two Delta Chat 2.57 cores reach tern only
// through fault-injecting proxies (latency, a bandwidth cap, stalls, resets at random byte
// offsets in both directions). 20 messages and a 10 MB file must arrive, none twice on either
// side, and the relay must stay up. The proxies count their resets: some must have cut transfers.
//
//   BADNET_SEED=1234 ./scripts/deno test -A tests/deltachat_bad_network_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { newAccount, startTern } from "./support/tern_process.ts";
import { Device, secureJoin } from "./support/deltachat.ts";
import { type Faults, FaultyProxy } from "./support/faulty_proxy.ts";
import { seedFrom } from "./support/prng.ts";
import { isAlive } from "./support/proc_status.ts";
import { countMessageIds } from "./support/bystander.ts";

const TEXTS_EACH_WAY = 10;
const FILE_BYTES = 10_000_000;
const ARRIVAL_TIMEOUT = 480_000;

/** While the chat is set up: slow, but nothing breaks. */
const SLOW: Faults = {
  up: { latencyMs: [10, 60], bytesPerSecond: 2_000_000 },
  down: { latencyMs: [10, 60], bytesPerSecond: 4_000_000 },
};

/**
 * During the transfers: a phone on a bad mobile network. Two reset rules per direction: a few
 * connections cut anywhere in their first 200 KB (a handshake, commands, small messages,
 * replies), and the first one that carries a big transfer cut in its middle (1–8 MB in: the
 * file). The budgets keep the run within Delta Chat's own retry limit and backoff (it waits 30 s,
 * then a minute, before sending again; a minute before an IMAP reconnect after three quick ones).
 */
const BAD_DIRECTION = {
  latencyMs: [20, 150] as [number, number],
  stallChance: 0.003,
  stallMs: [200, 2000] as [number, number],
  resets: [
    { chance: 0.4, atBytes: [100, 200_000] as [number, number], budget: 2 },
    {
      chance: 1,
      atBytes: [1_000_000, 8_000_000] as [number, number],
      spread: "uniform" as const,
      budget: 1,
    },
  ],
};
const BAD: Faults = {
  up: { ...BAD_DIRECTION, bytesPerSecond: 2_000_000 },
  down: { ...BAD_DIRECTION, bytesPerSecond: 4_000_000 },
};

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/** Every message text of a chat with how often it is there. */
async function chatTexts(d: Device, chatId: number): Promise<Map<string, number>> {
  const ids = await d.rpc.getMessageIds(d.accountId, chatId, false, false);
  const counts = new Map<string, number>();
  for (const id of ids) {
    const m = await d.rpc.getMessage(d.accountId, id);
    if (m.text) counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
  }
  return counts;
}

/** Waits until every message id is delivered (sent and acknowledged), failing on any failure. */
async function waitDelivered(d: Device, msgIds: number[], deadline: number): Promise<void> {
  // Message states (deltachat-core): 20 OutPending, 24 OutFailed, 26 OutDelivered, 28 read.
  while (true) {
    const states = await Promise.all(
      msgIds.map(async (id) => (await d.rpc.getMessage(d.accountId, id)).state),
    );
    const failed = msgIds.filter((_, i) => states[i] === 24);
    assert.deepEqual(failed, [], `${d.name}: messages failed to send\n${d.log()}`);
    if (states.every((s) => s >= 26)) return;
    if (Date.now() > deadline) {
      throw new Error(`${d.name}: not all sent (states ${states.join(",")})\n${d.log()}`);
    }
    await Promise.race([
      d.waitFor("MsgDelivered", () => true, 2000).catch(() => {}),
      d.waitFor("MsgFailed", () => true, 2000).catch(() => {}),
    ]);
  }
}

Deno.test({
  name: "Delta Chat on a bad network: 20 messages and a 10 MB file arrive once, the relay stays up",
  // The rpc clients and the relay are child processes, stopped in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = seedFrom("BADNET_SEED");
    console.log(`bad network: seed ${seed} (replay with BADNET_SEED=${seed})`);
    const tern = await startTern("turn_port = 0\nmax_user_send_burst_size = 100");
    const proxies: FaultyProxy[] = [];
    const devices: Device[] = [];
    const files = await Deno.makeTempDir({ prefix: "tern-badnet-" });
    try {
      const imap = await FaultyProxy.start({
        target: { port: tern.port("imaps") },
        seed,
        faults: SLOW,
      });
      const smtp = await FaultyProxy.start({
        target: { port: tern.port("submissions") },
        seed: seed + 1,
        faults: SLOW,
      });
      proxies.push(imap, smtp);
      const server = { imapPort: imap.port, smtpPort: smtp.port };
      const accounts: { email: string; password: string }[] = [];
      for (const name of ["alice", "bob"]) {
        const account = await newAccount(tern);
        accounts.push(account);
        const d = await Device.start(name);
        devices.push(d);
        await d.configure(server, account.email, account.password);
      }
      const [alice, bob] = devices;
      const chats = await secureJoin(alice, bob, 120_000);

      // From here on the network is bad; connections open now are cut as a network switch would.
      for (const p of proxies) {
        p.faults = BAD;
        p.dropAll();
      }
      const path = `${files}/ten.bin`;
      const data = new Uint8Array(FILE_BYTES);
      for (let off = 0; off < FILE_BYTES; off += 65536) {
        crypto.getRandomValues(data.subarray(off, Math.min(FILE_BYTES, off + 65536)));
      }
      await Deno.writeFile(path, data);
      const want = await sha256(path);
      const sent = new Map<Device, number[]>([[alice, []], [bob, []]]);
      const expected = new Set<string>();
      for (let i = 0; i < TEXTS_EACH_WAY; i++) {
        for (const [from, chat] of [[alice, chats.inviterChat], [bob, chats.joinerChat]] as const) {
          const text = `bad network ${from.name} ${i}`;
          expected.add(text);
          sent.get(from)!.push(await from.rpc.miscSendTextMessage(from.accountId, chat, text));
        }
        if (i === 3) {
          expected.add("the file");
          sent.get(alice)!.push(
            await alice.rpc.sendMsg(alice.accountId, chats.inviterChat, {
              text: "the file",
              html: null,
              viewtype: "File",
              file: path,
              filename: "ten.bin",
              location: null,
              overrideSenderName: null,
              quotedMessageId: null,
              quotedText: null,
            }),
          );
        }
      }
      const t0 = performance.now();
      const deadline = Date.now() + ARRIVAL_TIMEOUT;
      for (const text of expected) {
        const receiver = text.startsWith("bad network bob") ? alice : bob;
        const m = await receiver.waitForText(text, Math.max(1000, deadline - Date.now()));
        if (text === "the file") {
          assert.ok(m.file, "the file message has its file");
          assert.equal(await sha256(m.file!), want, "the file arrived byte for byte");
        }
      }
      const arrivedMs = performance.now() - t0;
      await waitDelivered(alice, sent.get(alice)!, deadline);
      await waitDelivered(bob, sent.get(bob)!, deadline);
      assert.ok(isAlive(tern.pid), `the relay died:\n${tern.stderr().slice(-5000)}`);

      // Both sides: every message once (sent copies and received ones), nothing else doubled.
      for (const [d, chat] of [[alice, chats.inviterChat], [bob, chats.joinerChat]] as const) {
        const texts = await chatTexts(d, chat);
        for (const text of expected) {
          assert.equal(texts.get(text), 1, `${d.name} has "${text}" ${texts.get(text) ?? 0}×`);
        }
        const doubled = [...texts].filter(([, n]) => n > 1);
        assert.deepEqual(doubled, [], `${d.name}: messages shown twice`);
      }

      const resets = proxies.flatMap((p) => p.stats.resets);
      const big = resets.filter((r) => r.atByte >= 1_000_000).length;
      const stored = await Promise.all(
        accounts.map(async (a) =>
          [...(await countMessageIds({
            port: tern.port("imaps"),
            caPem: tern.caPem,
            user: { address: a.email, password: a.password },
          })).values()].filter((n) => n > 1).length
        ),
      );
      console.log(
        `bad network: all arrived in ${(arrivedMs / 1000).toFixed(1)} s; ${
          proxies.reduce((n, p) => n + p.stats.connections, 0)
        } connections, ${resets.length} resets (${big} past 1 MB: ${
          resets.filter((r) => r.atByte >= 1_000_000).map((r) => `${r.dir}@${r.atByte}`).join(" ")
        }), ${proxies.reduce((n, p) => n + p.stats.stalls, 0)} stalls, ${
          proxies.reduce((n, p) => n + p.stats.dropped, 0)
        } dropped at the switch; Message-IDs stored more than once (a 250 lost on the way ` +
          `back, deduplicated by the client): ${stored.join(", ")}`,
      );
      assert.ok(resets.length > 0, "the proxies reset connections during transfers");
      assert.ok(big > 0, "some resets cut the file's transfer in its middle");
      assert.ok(!/Uncaught/.test(tern.stderr()), tern.stderr().slice(-5000));
    } finally {
      for (const d of devices) await d.stop();
      for (const p of proxies) await p.close();
      await tern.stop();
      await Deno.remove(files, { recursive: true }).catch(() => {});
    }
  },
});
