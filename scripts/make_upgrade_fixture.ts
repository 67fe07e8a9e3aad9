// Builds tests/fixtures/upgrade-378cb07/: a data directory written by the release at commit
// 378cb07, and manifest.json, what that release served from it over IMAP. tests/upgrade_test.ts
// starts today's tern on a copy and compares.
//
// Run from a checkout of 378cb07 (it starts that checkout's main.ts and imports its test
// support), e.g.:
//   git worktree add /tmp/old 378cb07 && cp scripts/make_upgrade_fixture.ts /tmp/old/scripts/
//   cd /tmp/old && ./scripts/deno run -A scripts/make_upgrade_fixture.ts /path/to/out
//
// The directory holds accounts, mail with flags, keywords and expunges in two mailboxes, a large
// message (stored inline by that release), a body shared by two accounts, METADATA device
// tokens, queue entries for another relay, settings, a registration token and a blocklist entry;
// and deltachat/: the account directories of two real Delta Chat cores (deltachat-rpc-server)
// configured against that release, which Secure-Joined and chatted through it.

import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { StdioDeltaChat } from "@deltachat/jsonrpc-client";
import type { T } from "@deltachat/jsonrpc-client";
import { startTern } from "../tests/support/tern_process.ts";
import { runTern } from "../tests/support/util.ts";
import { SmtpTestClient } from "../tests/support/smtp_client.ts";
import { ImapTestClient } from "../tests/support/imap_client.ts";
import { armoredPayload, pgpMime } from "../tests/support/messages.ts";

const out = Deno.args[0];
if (!out) {
  console.error("usage: make_upgrade_fixture.ts OUTDIR (run from a checkout of 378cb07)");
  Deno.exit(2);
}

// REMOTE is on a loopback address, which submission and outbound delivery refuse unless allowed.
const LIMITS = "max_user_send_per_minute = 1000000\nmax_user_send_burst_size = 1000000\n" +
  "outbound_allow_private = true";
const PASSWORD = "password-123456";
const users = ["alice0001", "bobby0001", "carol0001"].map((u) => `${u}@[127.0.0.1]`);
const [alice, bob, carol] = users;
const REMOTE = "dave@[127.0.0.9]";

const DC_BINARY = dirname(
  createRequire(import.meta.url).resolve("@deltachat/stdio-rpc-server-linux-x64/package.json"),
) +
  "/deltachat-rpc-server";

/** A Delta Chat core keeping its accounts in `dir`, with one account. */
async function deltaChat(dir: string) {
  const proc = spawn(DC_BINARY, [], {
    env: { ...Deno.env.toObject(), DC_ACCOUNTS_PATH: dir, RUST_LOG: "warn" },
    stdio: ["pipe", "pipe", "ignore"],
  });
  const dc = new StdioDeltaChat(proc.stdin, proc.stdout, true);
  const acc = (await dc.rpc.getAllAccountIds())[0] ?? await dc.rpc.addAccount();
  type Ev<K> = Extract<T.EventType, { kind: K }>;
  const wait = <K extends T.EventType["kind"]>(
    kind: K,
    match: (e: Ev<K>) => boolean,
    what: string,
  ) =>
    new Promise<Ev<K>>((resolve, reject) => {
      const events = dc.getContextEvents(acc);
      const timer = setTimeout(() => reject(new Error(`fixture: no ${what}`)), 60_000);
      const on = (e: Ev<K>) => {
        if (!match(e)) return;
        clearTimeout(timer);
        events.off(kind, on as never);
        resolve(e);
      };
      events.on(kind, on as never);
    });
  return {
    dc,
    acc,
    wait,
    async stop() {
      await dc.rpc.stopIo(acc);
      dc.close();
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "tern-fixture-" });
const relay = await startTern(LIMITS, { dir, log: "info" });
const config = `${dir}/tern.toml`;
/** The mailbox name at the end of a LIST/LSUB line, quoted or not. */
const lastName = (line: string) => {
  const m = /\s("(?:[^"\\]|\\.)*"|\S+)$/.exec(line)!;
  return m[1].startsWith('"') ? m[1].slice(1, -1) : m[1];
};
const must = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`fixture: ${what}`);
};

try {
  for (const u of users) {
    const r = await runTern(["accounts", "create", u, PASSWORD, "--config", config]);
    must(r.code === 0, `accounts create ${u}: ${r.stderr}`);
  }
  for (const [k, v] of [["admin_contact", "mailto:ops@example.org"], ["turn_enabled", "false"]]) {
    const r = await runTern(["settings", "set", k, v, "--config", config]);
    must(r.code === 0, `settings set ${k}: ${r.stderr}`);
  }

  const smtp = await SmtpTestClient.connect(
    { hostname: "127.0.0.1", port: relay.port("submissions") },
    { tls: true, caPem: relay.caPem },
  );
  await smtp.reply();
  await smtp.cmd("EHLO fixture.test");
  must((await smtp.login(alice, PASSWORD)).code === 235, "smtp login");
  const send = async (to: string[], text: string) => {
    const msg = pgpMime(alice, to[0], await armoredPayload(text));
    const r = await smtp.sendMail(alice, to, msg);
    must(r.code === 250, `send to ${to}: ${r.text}`);
  };
  for (let i = 1; i <= 6; i++) await send([bob], `message ${i} for bob`);
  await send([bob, carol], "one body for bob and carol");
  // Larger than the new inline limit: the old release stored it inline like every body.
  await send([bob], "large ".repeat(40_000));
  await send([REMOTE], "for another relay");
  await send([REMOTE, "erin@[127.0.0.9]"], "two recipients on another relay");
  smtp.close();

  const imap = async (user: string) => {
    const { client } = await ImapTestClient.connect(
      { hostname: "127.0.0.1", port: relay.port("imaps") },
      { tls: true, caPem: relay.caPem },
    );
    must((await client.login(user, PASSWORD)).ok, `imap login ${user}`);
    return client;
  };
  const ok = async (c: ImapTestClient, command: string) => {
    const r = await c.cmd(command);
    must(r.ok, `${command}: ${r.status}`);
    return r;
  };

  const b = await imap(bob);
  await ok(b, "ENABLE CONDSTORE");
  await ok(b, "SELECT INBOX");
  await ok(b, "UID STORE 1 +FLAGS (\\Seen)");
  await ok(b, "UID STORE 2 +FLAGS (\\Seen \\Flagged $Important)");
  await ok(b, "UID STORE 3 +FLAGS (\\Deleted)");
  await ok(b, "UID EXPUNGE 3");
  await ok(b, "UID STORE 4 +FLAGS (\\Answered $Label1 Work)");
  await ok(b, "CREATE DeltaChat");
  await ok(b, "UID MOVE 5 DeltaChat");
  await ok(b, "UID STORE 6 +FLAGS (\\Seen)");
  await ok(b, "UID STORE 6 -FLAGS (\\Seen)");
  const draft = "From: <bobby0001@[127.0.0.1]>\r\nSubject: draft\r\n\r\nnot sent\r\n";
  const t = b.nextTag();
  await b.send(`${t} APPEND DeltaChat (\\Draft $Pending) {${draft.length}+}\r\n${draft}\r\n`);
  must((await b.collect(t)).ok, "append");
  await ok(b, 'SETMETADATA INBOX (/private/devicetoken "fixture-token-bob-1")');
  await ok(b, 'SETMETADATA INBOX (/private/devicetoken "fixture-token-bob-2")');
  await ok(b, "CREATE Archive");
  await ok(b, "UNSUBSCRIBE Archive");
  await ok(b, "SUBSCRIBE Later");
  await ok(b, "LOGOUT");
  b.close();

  const c = await imap(carol);
  await ok(c, 'SETMETADATA INBOX (/private/devicetoken "fixture-token-carol")');
  await ok(c, "LOGOUT");
  c.close();

  // Two Delta Chat cores: configured, Secure-Joined, three messages each way, then stopped.
  const cores = ["dora00001", "eric00001"].map((u) => `${u}@[127.0.0.1]`);
  const [dora, eric] = await Promise.all(
    cores.map((a) => deltaChat(`${out}/deltachat/${a.slice(0, 4)}`)),
  );
  for (const [d, address] of [[dora, cores[0]], [eric, cores[1]]] as const) {
    await d.dc.rpc.batchSetConfig(d.acc, { bcc_self: "1", displayname: address.slice(0, 4) });
    await d.dc.rpc.addOrUpdateTransport(d.acc, {
      addr: address,
      password: PASSWORD,
      imapServer: "127.0.0.1",
      imapPort: relay.port("imaps"),
      imapSecurity: "ssl",
      imapUser: null,
      imapFolder: null,
      smtpServer: "127.0.0.1",
      smtpPort: relay.port("submissions"),
      smtpSecurity: "ssl",
      smtpUser: null,
      smtpPassword: null,
      certificateChecks: "acceptInvalidCertificates",
    });
    const idle = d.wait("ImapInboxIdle", () => true, "idle inbox");
    await d.dc.rpc.startIo(d.acc);
    await idle;
  }
  console.log("fixture: Delta Chat cores configured");
  const qr = await dora.dc.rpc.getChatSecurejoinQrCode(dora.acc, null);
  const joined = dora.wait("SecurejoinInviterProgress", (e) => e.progress === 1000, "join");
  const ericChat = await eric.dc.rpc.secureJoin(eric.acc, qr);
  const doraChat = await dora.dc.rpc.createChatByContactId(dora.acc, (await joined).contactId);
  console.log("fixture: Secure-Join done");
  for (let i = 1; i <= 3; i++) {
    for (const [from, chat, to] of [[eric, ericChat, dora], [dora, doraChat, eric]] as const) {
      const text = `before the upgrade ${i} from ${from === dora ? "dora" : "eric"}`;
      const got = to.wait("IncomingMsg", () => true, text);
      await from.dc.rpc.miscSendTextMessage(from.acc, chat, text);
      await got;
    }
  }
  const deltachat = {
    dora: {
      address: cores[0],
      chatMessages: (await dora.dc.rpc.getMessageIds(dora.acc, doraChat, false, false)).length,
    },
    eric: {
      address: cores[1],
      // …plus "while dora was away", sent after dora stopped.
      chatMessages: (await eric.dc.rpc.getMessageIds(eric.acc, ericChat, false, false)).length + 1,
    },
  };
  await dora.stop();
  // Mail that arrives while a device is away must reach it after the upgrade.
  const delivered = eric.wait("MsgDelivered", () => true, "delivery while dora is away");
  await eric.dc.rpc.miscSendTextMessage(eric.acc, ericChat, "while dora was away");
  await delivered;
  await eric.stop();
  // Their databases as single files: the WAL folded in (nothing changes in what they hold).
  for (const name of ["dora", "eric"]) {
    for await (const e of Deno.readDir(`${out}/deltachat/${name}`)) {
      if (!e.isDirectory) continue;
      const db = new DatabaseSync(`${out}/deltachat/${name}/${e.name}/dc.db`);
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
    }
    await Deno.remove(`${out}/deltachat/${name}/accounts.lock`).catch(() => {});
  }
  console.log("fixture: Delta Chat cores stopped");
  users.push(...cores);

  // The manifest: what the old release serves. EXAMINE claims no \Recent.
  const manifest: Record<string, unknown> = {
    commit: "378cb07",
    password: PASSWORD,
    users,
    deltachat,
  };
  const accounts: Record<string, unknown> = {};
  for (const user of users) {
    const s = await imap(user);
    await ok(s, "ENABLE CONDSTORE");
    const list = await ok(s, 'LIST "" "*"');
    const names = list.untagged.map(lastName).sort();
    const lsub = await ok(s, 'LSUB "" "*"');
    const mailboxes: Record<string, unknown> = {};
    for (const name of names) {
      const ex = await ok(s, `EXAMINE "${name}"`);
      const code = (k: string) =>
        Number(ex.untagged.map((l) => new RegExp(`\\[${k} (\\d+)\\]`).exec(l)).find(Boolean)![1]);
      const f = await ok(
        s,
        "UID FETCH 1:* (UID FLAGS MODSEQ RFC822.SIZE INTERNALDATE BODY.PEEK[])",
      );
      const messages = f.untagged.filter((l) => / FETCH \(/.test(l)).map((l) => {
        const body = l.slice(l.indexOf("}\r\n") + 3, l.lastIndexOf(")"));
        return {
          uid: Number(/UID (\d+)/.exec(l)![1]),
          flags: /FLAGS \(([^)]*)\)/.exec(l)![1].split(" ").filter(Boolean).sort(),
          modseq: Number(/MODSEQ \((\d+)\)/.exec(l)![1]),
          size: Number(/RFC822\.SIZE (\d+)/.exec(l)![1]),
          internalDate: /INTERNALDATE "([^"]+)"/.exec(l)![1],
          sha256: createHash("sha256").update(body).digest("hex"),
        };
      });
      mailboxes[name] = {
        uidValidity: code("UIDVALIDITY"),
        uidNext: code("UIDNEXT"),
        highestModSeq: code("HIGHESTMODSEQ"),
        exists: Number(ex.untagged.map((l) => /^\* (\d+) EXISTS/.exec(l)).find(Boolean)![1]),
        messages,
      };
    }
    const md = await ok(s, "GETMETADATA INBOX (/private/devicetoken)");
    await ok(s, "LOGOUT");
    s.close();
    accounts[user] = {
      mailboxes,
      subscribed: lsub.untagged.map(lastName).sort(),
      metadata: md.untagged.join("\n"),
    };
  }
  manifest.accounts = accounts;
  const queue = await runTern(["queue", "list", "--config", config]);
  must(queue.code === 0, `queue list: ${queue.stderr}`);
  manifest.queue = queue.stdout.trim().split("\n").filter((l) => l.includes("<")).length;
  const settings = await runTern(["settings", "get", "--config", config]);
  manifest.settings = settings.stdout.trim();
  await relay.stop();

  // Written with the old release's own store code while nothing else runs.
  const db = new DatabaseSync(`${dir}/data/tern.db`);
  db.exec(
    "INSERT INTO registration_tokens (token, max_uses, uses, expires_at, created_at, comment) VALUES ('fixture-token', 5, 1, NULL, 1700000000000, 'fixture')",
  );
  db.exec(
    "INSERT INTO blocklist (entry, reason, created_at) VALUES ('@spam.example', 'fixture', 1700000000000)",
  );
  // One checkpointed file: no -wal beside it.
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  manifest.queueRows = new DatabaseSync(`${dir}/data/tern.db`, { readOnly: true })
    .prepare("SELECT COUNT(*) AS n FROM queue_recipients").get();

  await Deno.mkdir(`${out}/datadir`, { recursive: true });
  await Deno.copyFile(`${dir}/data/tern.db`, `${out}/datadir/tern.db`);
  await Deno.writeTextFile(`${out}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  console.log(`fixture written to ${out}`);
} finally {
  await relay.stop();
  await Deno.remove(dir, { recursive: true });
}
