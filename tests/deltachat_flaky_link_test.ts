// Phones on a flaky link (issue 16), kept short: two Delta Chat 2.57 cores reach tern's IMAP and
// SMTP only through fault-injecting proxies that cut connections at random byte offsets in both
// directions, stall, and split writes. 20 messages (three with a 1 MB file) go both ways while
// the link misbehaves; then it behaves. Every message must arrive exactly once, the relay must
// still answer, no IMAP or SMTP connection may be left open on it once the clients are gone, and
// it must log no error. (The 10 MB long run is deltachat_bad_network_test.ts.)
//
//   FLAKY_SEED=1234 ./scripts/deno test -A tests/deltachat_flaky_link_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { newAccount, openConnections, startTern } from "./support/tern_process.ts";
import { Device, secureJoin } from "./support/deltachat.ts";
import {
  type DirectionFaults,
  type Faults,
  FaultyProxy,
  NO_FAULTS,
} from "./support/faulty_proxy.ts";
import { seedFrom } from "./support/prng.ts";
import { isAlive } from "./support/proc_status.ts";
import { WireClient } from "./support/wire_client.ts";

const MESSAGES = 20;
const FILE_BYTES = 1_000_000;
/** Generous: Delta Chat waits up to a minute before it tries again after failures. */
const ARRIVAL_TIMEOUT = 240_000;

/**
 * A bad link: cuts anywhere in a connection's first 1.5 MB (commands, handshakes, a file in
 * transit), stalls, and writes that arrive in two parts. One reset rule for both directions, at
 * most two cuts per proxy: Delta Chat itself waits 50 s before a fourth IMAP connection in quick
 * succession, and a run must stay well within its deadline.
 */
const CUT = { chance: 0.5, atBytes: [50, 1_500_000] as [number, number], budget: 2 };
const flaky = (bytesPerSecond: number): DirectionFaults => ({
  latencyMs: [5, 40],
  bytesPerSecond,
  stallChance: 0.01,
  stallMs: [100, 1500],
  splitChance: 0.05,
  splitMs: [5, 300],
  resets: [CUT],
});
const BAD: Faults = { up: flaky(4_000_000), down: flaky(8_000_000) };

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/** How often each text is in the chat (sent and received copies alike). */
async function chatTexts(d: Device, chatId: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const id of await d.rpc.getMessageIds(d.accountId, chatId, false, false)) {
    const m = await d.rpc.getMessage(d.accountId, id);
    if (m.text) counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
  }
  return counts;
}

Deno.test({
  name: "Delta Chat on a flaky link: 20 messages (1 MB files) arrive once, nothing left open",
  // The rpc servers and the relay are child processes, stopped in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = seedFrom("FLAKY_SEED");
    console.log(`flaky link: seed ${seed} (replay with FLAKY_SEED=${seed})`);
    const tern = await startTern("turn_port = 0\nmax_user_send_burst_size = 100", {
      listen: { metrics: "127.0.0.1:0" },
    });
    const proxies: FaultyProxy[] = [];
    const devices: Device[] = [];
    const files = await Deno.makeTempDir({ prefix: "tern-flaky-" });
    try {
      const imap = await FaultyProxy.start({ target: { port: tern.port("imaps") }, seed });
      const smtp = await FaultyProxy.start({
        target: { port: tern.port("submissions") },
        seed: seed + 1,
      });
      proxies.push(imap, smtp);
      for (const name of ["alice", "bob"]) {
        const account = await newAccount(tern);
        const d = await Device.start(name);
        devices.push(d);
        await d.configure(
          { imapPort: imap.port, smtpPort: smtp.port },
          account.email,
          account.password,
        );
      }
      const [alice, bob] = devices;
      const chats = await secureJoin(alice, bob, 120_000);

      // The link goes bad; connections open now are cut as by a network switch.
      for (const p of proxies) {
        p.faults = BAD;
        p.dropAll();
      }
      const want = new Map<string, string>();
      const expected: { text: string; to: Device }[] = [];
      for (let i = 0; i < MESSAGES; i++) {
        const [from, to, chat] = i % 2
          ? [bob, alice, chats.joinerChat]
          : [alice, bob, chats.inviterChat];
        const text = `flaky ${from.name} ${i}`;
        expected.push({ text, to });
        if (i % 7 === 3) {
          const path = `${files}/f${i}.bin`;
          const data = new Uint8Array(FILE_BYTES);
          for (let off = 0; off < FILE_BYTES; off += 65536) {
            crypto.getRandomValues(data.subarray(off, Math.min(FILE_BYTES, off + 65536)));
          }
          await Deno.writeFile(path, data);
          want.set(text, await sha256(path));
          await from.rpc.sendMsg(from.accountId, chat, {
            text,
            html: null,
            viewtype: "File",
            file: path,
            filename: `f${i}.bin`,
            location: null,
            overrideSenderName: null,
            quotedMessageId: null,
            quotedText: null,
          });
        } else {
          await from.rpc.miscSendTextMessage(from.accountId, chat, text);
        }
      }
      // Half of them must arrive through the bad link; then it behaves.
      const deadline = Date.now() + ARRIVAL_TIMEOUT;
      for (const { text, to } of expected.slice(0, MESSAGES / 2)) {
        await to.waitForText(text, Math.max(1000, deadline - Date.now()));
      }
      for (const p of proxies) p.faults = NO_FAULTS;
      for (const { text, to } of expected) {
        const m = await to.waitForText(text, Math.max(1000, deadline - Date.now()));
        if (want.has(text)) {
          assert.ok(m.file, `"${text}" has its file`);
          assert.equal(await sha256(m.file!), want.get(text), `"${text}": the file byte for byte`);
        }
      }
      // Exactly once, on the receiving side (core's view).
      for (const [d, chat] of [[alice, chats.inviterChat], [bob, chats.joinerChat]] as const) {
        const texts = await chatTexts(d, chat);
        for (const { text, to } of expected) {
          if (to === d) {
            assert.equal(texts.get(text), 1, `${d.name} has "${text}" ${texts.get(text)}×`);
          }
        }
        assert.deepEqual(
          [...texts].filter(([, n]) => n > 1),
          [],
          `${d.name}: messages shown twice`,
        );
      }
      const resets = proxies.flatMap((p) => p.stats.resets);
      console.log(
        `flaky link: ${proxies.reduce((n, p) => n + p.stats.connections, 0)} connections, ` +
          `${resets.length} resets (${resets.map((r) => `${r.dir}@${r.atByte}`).join(" ")}), ` +
          `${proxies.reduce((n, p) => n + p.stats.stalls, 0)} stalls, ` +
          `${proxies.reduce((n, p) => n + p.stats.splits, 0)} split writes`,
      );
      assert.ok(resets.length > 0, "the link cut connections");
      assert.ok(proxies.some((p) => p.stats.splits > 0), "the link split writes");

      // The relay is up and answers.
      assert.ok(isAlive(tern.pid), `the relay died:\n${tern.stderr().slice(-5000)}`);
      const c = await WireClient.connect(tern.port("imaps"), { tlsCa: tern.caPem });
      assert.match(await c.line(), /^\* OK /);
      assert.match((await c.cmd("n", "NOOP")).status, /^OK/);
      c.close();
      await c.closed;

      // The clients go: nothing of theirs stays open on the relay.
      for (const d of devices.splice(0)) await d.stop();
      for (const p of proxies.splice(0)) await p.close();
      let open = await openConnections(tern);
      for (const until = Date.now() + 30_000; open > 0 && Date.now() < until;) {
        await new Promise((r) => setTimeout(r, 200));
        open = await openConnections(tern);
      }
      assert.equal(open, 0, "IMAP/SMTP connections left open on the relay");
      const errors = tern.stderr().split("\n").filter((l) =>
        /"level":"error"/.test(l) || /Uncaught/.test(l)
      );
      assert.deepEqual(errors, [], "error lines in the relay's log");
    } finally {
      for (const d of devices) await d.stop();
      for (const p of proxies) await p.close();
      await tern.stop();
      await Deno.remove(files, { recursive: true }).catch(() => {});
    }
  },
});
