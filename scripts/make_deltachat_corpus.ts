// Makes tests/fixtures/deltachat/: the messages real Delta Chat cores send, captured on the wire.
//
//   ./scripts/deno run -A scripts/make_deltachat_corpus.ts [--out DIR]
//
// Three cores (npm @deltachat/stdio-rpc-server-linux-x64, the version in deno.json) get accounts
// on a tern relay for the domain chat.test on loopback. Their SMTP goes through a recording proxy
// that terminates TLS (the cores accept any certificate) and passes every byte on to tern's
// submission port over TLS; the proxy keeps the envelope and the DATA of each transaction exactly
// as the core sent it. IMAP goes straight to tern. The cores then run Secure-Join twice, chat 1:1,
// chat in a group of three, send a 20 KB file and react to a message; each message is filed
// under the step that made it. Passwords and the AUTH exchange are not kept.
//
// Every run makes new keys, addresses and Message-IDs: the tests read details of these files
// (tests/support/deltachat_corpus.ts and the tests that use it) and must be updated with them.

import * as tls from "node:tls";
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";
import * as openpgp from "openpgp";
import { generateSelfSigned } from "../src/net/mod.ts";
import { startTern, type TernProcess } from "../tests/support/tern_process.ts";
import { Device, secureJoin } from "../tests/support/deltachat.ts";

const DOMAIN = "chat.test";
const { values: flags } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string", default: "tests/fixtures/deltachat" } },
});
const OUT = flags.out!;
const log = (line: string) => console.error(`corpus: ${line}`);

interface Captured {
  from: string;
  recipients: string[];
  data: Uint8Array;
}

/** Extracts the transactions from what one SMTP client sent (RFC 5321 §4.1, DATA dot-unstuffed). */
class TranscriptReader {
  #buf = Buffer.alloc(0);
  #inData = false;
  #from = "";
  #rcpts: string[] = [];
  #lines: Buffer[] = [];
  constructor(readonly onMessage: (m: Captured) => void) {}

  push(chunk: Buffer) {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i < 0) return;
      const line = this.#buf.subarray(0, i);
      this.#buf = this.#buf.subarray(i + 2);
      this.#line(line);
    }
  }

  #line(line: Buffer) {
    if (this.#inData) {
      if (line.length === 1 && line[0] === 0x2e) {
        const data = new Uint8Array(Buffer.concat(this.#lines.flatMap((l) => [l, CRLF])));
        this.onMessage({ from: this.#from, recipients: this.#rcpts, data });
        this.#inData = false;
        this.#lines = [];
        this.#rcpts = [];
        return;
      }
      this.#lines.push(line[0] === 0x2e ? line.subarray(1) : line);
      return;
    }
    const text = line.toString("latin1");
    const upper = text.toUpperCase();
    if (upper.startsWith("MAIL FROM:")) {
      this.#from = /<([^>]*)>/.exec(text)?.[1] ?? "";
    } else if (upper.startsWith("RCPT TO:")) {
      this.#rcpts.push(/<([^>]*)>/.exec(text)?.[1] ?? "");
    } else if (upper === "DATA") {
      this.#inData = true;
    } else if (upper === "RSET") {
      this.#rcpts = [];
    }
  }
}
const CRLF = Buffer.from("\r\n");

/** A TLS proxy in front of tern's implicit-TLS submission port that records transactions. */
async function startProxy(tern: TernProcess, onMessage: (m: Captured) => void) {
  const material = await generateSelfSigned(["127.0.0.1"]);
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    { key: material.keyPem, cert: material.certPem },
    (client) => {
      const upstream = tls.connect({
        host: "127.0.0.1",
        port: tern.port("submissions"),
        ca: tern.caPem,
        servername: DOMAIN,
      });
      sockets.add(client);
      sockets.add(upstream);
      const reader = new TranscriptReader(onMessage);
      client.on("data", (chunk: Buffer) => {
        reader.push(chunk);
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => client.write(chunk));
      const end = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      for (const s of [client, upstream]) {
        s.on("error", end);
        s.on("close", end);
      }
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function newAccount(tern: TernProcess): Promise<{ email: string; password: string }> {
  const r = await fetch(`http://${tern.listen.http}/new`, { method: "POST" });
  if (r.status !== 200) throw new Error(`/new answered ${r.status}`);
  return await r.json();
}

/** OpenPGP packet tags of the armored payload in a PGP/MIME message. */
async function packetTags(data: Uint8Array): Promise<number[]> {
  const text = new TextDecoder().decode(data);
  const a = text.indexOf("-----BEGIN PGP MESSAGE-----");
  const b = text.indexOf("-----END PGP MESSAGE-----", a);
  if (a < 0 || b < 0) return [];
  const message = await openpgp.readMessage({
    armoredMessage: text.slice(a, b + "-----END PGP MESSAGE-----".length),
  });
  return message.packets.map((p) => (p.constructor as unknown as { tag: number }).tag);
}

async function main() {
  const captured: (Captured & { step: string })[] = [];
  let step = "setup";
  let lastAt = 0;
  const tern = await startTern("", { domain: DOMAIN, log: "off" });
  const proxy = await startProxy(tern, (m) => {
    captured.push({ ...m, step });
    lastAt = Date.now();
  });
  const devices: Device[] = [];
  const files = await Deno.makeTempDir({ prefix: "tern-corpus-" });
  /**
   * Runs one step and files what the cores send during it. A core sends some messages a little
   * after the action that caused them (sync messages to its other devices): the step ends once
   * nothing new was sent for three seconds.
   */
  const run = async (name: string, fn: () => Promise<void>) => {
    step = name;
    const before = captured.length;
    await fn();
    lastAt = Date.now();
    while (Date.now() - lastAt < 3000) await new Promise((r) => setTimeout(r, 200));
    log(`${name}: ${captured.length - before} message(s)`);
  };
  try {
    const server = { imapPort: tern.port("imaps"), smtpPort: proxy.port };
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map(async (name) => {
      const d = await Device.start(name);
      devices.push(d);
      const account = await newAccount(tern);
      await d.configure(server, account.email, account.password);
      return d;
    }));
    const names = new Map(devices.map((d) => [d.address, d.name]));
    let ab!: { inviterChat: number; joinerChat: number };
    let ac!: { inviterChat: number; joinerChat: number };
    await run("securejoin-alice-bob", async () => {
      ab = await secureJoin(alice, bob, 60_000);
    });
    await run("text-alice-to-bob", async () => {
      await alice.rpc.miscSendTextMessage(alice.accountId, ab.inviterChat, "hello bob");
      await bob.waitForText("hello bob", 30_000);
    });
    await run("text-bob-to-alice", async () => {
      await bob.rpc.miscSendTextMessage(bob.accountId, ab.joinerChat, "hello alice");
      await alice.waitForText("hello alice", 30_000);
    });
    await run("securejoin-alice-carol", async () => {
      ac = await secureJoin(alice, carol, 60_000);
    });
    let group = 0;
    await run("group-alice-to-trio", async () => {
      group = await alice.rpc.createGroupChat(alice.accountId, "trio", false);
      for (const chat of [ab.inviterChat, ac.inviterChat]) {
        const [contact] = await alice.rpc.getChatContacts(alice.accountId, chat);
        await alice.rpc.addContactToChat(alice.accountId, group, contact);
      }
      await alice.rpc.miscSendTextMessage(alice.accountId, group, "hello trio");
      const atBob = await bob.waitForText("hello trio", 30_000);
      await carol.waitForText("hello trio", 30_000);
      await bob.rpc.acceptChat(bob.accountId, atBob.chatId);
    });
    await run("group-bob-to-trio", async () => {
      const [chat] = await bob.rpc.getChatlistEntries(bob.accountId, null, "trio", null);
      await bob.rpc.miscSendTextMessage(bob.accountId, chat, "hi all");
      await alice.waitForText("hi all", 30_000);
      await carol.waitForText("hi all", 30_000);
    });
    await run("file-alice-to-bob", async () => {
      const path = `${files}/notes.bin`;
      const data = new Uint8Array(20_000);
      crypto.getRandomValues(data);
      await Deno.writeFile(path, data);
      await alice.rpc.sendMsg(alice.accountId, ab.inviterChat, {
        text: "a file",
        html: null,
        viewtype: "File",
        file: path,
        filename: "notes.bin",
        location: null,
        overrideSenderName: null,
        quotedMessageId: null,
        quotedText: null,
      });
      await bob.waitForText("a file", 60_000);
    });
    await run("reaction-bob", async () => {
      const m = await bob.waitForText("hello bob", 1000);
      await bob.rpc.sendReaction(bob.accountId, m.id, ["👍"]);
      await alice.waitFor("IncomingReaction", () => true, 30_000, "the reaction");
    });

    // Write the files, numbered in sending order within each step.
    await Deno.remove(OUT, { recursive: true }).catch(() => {});
    await Deno.mkdir(OUT, { recursive: true });
    const index = [];
    const perStep = new Map<string, number>();
    for (const [i, m] of captured.entries()) {
      const n = (perStep.get(m.step) ?? 0) + 1;
      perStep.set(m.step, n);
      const file = `${String(i + 1).padStart(2, "0")}-${m.step}-${n}.eml`;
      await Deno.writeFile(`${OUT}/${file}`, m.data);
      index.push({
        file,
        step: m.step,
        sender: names.get(m.from) ?? m.from,
        from: m.from,
        to: m.recipients.map((r) => names.get(r) ?? r),
        bytes: m.data.length,
        packets: await packetTags(m.data),
      });
    }
    await Deno.writeTextFile(`${OUT}/index.json`, JSON.stringify(index, null, 2) + "\n");
    log(`${captured.length} messages written to ${OUT}`);
  } finally {
    for (const d of devices) await d.stop();
    await proxy.close();
    await tern.stop();
    await Deno.remove(files, { recursive: true });
  }
}

await main();
