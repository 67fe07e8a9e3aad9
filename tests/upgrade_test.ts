// Upgrade in place: today's tern starts on a data directory written by the release at 378cb07
// (tests/fixtures/upgrade-378cb07, made by scripts/make_upgrade_fixture.ts), migrates it, and
// serves every message over real IMAP exactly as that release did: same UIDs, UIDVALIDITY,
// modseqs, flags and keywords, bytes; expunges still reported to QRESYNC; METADATA tokens, queue
// entries, settings, registration tokens and blocklist intact. And two real Delta Chat cores
// configured against that release carry on after the upgrade without downloading again.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { StdioDeltaChat } from "@deltachat/jsonrpc-client";
import type { T } from "@deltachat/jsonrpc-client";
import { startTern } from "./support/tern_process.ts";
import { runTern } from "./support/util.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";
import { CORES } from "./support/deltachat_cores.ts";
import { DatabaseSync } from "node:sqlite";
import { MIGRATIONS, openSqliteStore } from "../src/store/sqlite/mod.ts";

const FIXTURE = new URL("./fixtures/upgrade-378cb07/", import.meta.url).pathname;

interface MessageView {
  uid: number;
  flags: string[];
  modseq: number;
  size: number;
  internalDate: string;
  sha256: string;
}

interface Manifest {
  password: string;
  users: string[];
  accounts: Record<string, {
    mailboxes: Record<string, {
      uidValidity: number;
      uidNext: number;
      highestModSeq: number;
      exists: number;
      messages: MessageView[];
    }>;
    subscribed: string[];
    metadata: string;
  }>;
  queue: number;
  queueRows: { n: number };
  settings: string;
  deltachat: Record<"dora" | "eric", { address: string; chatMessages: number }>;
}

function lastName(line: string): string {
  const m = /\s("(?:[^"\\]|\\.)*"|\S+)$/.exec(line)!;
  return m[1].startsWith('"') ? m[1].slice(1, -1) : m[1];
}

async function ok(c: ImapTestClient, command: string) {
  const r = await c.cmd(command);
  assert.ok(r.ok, `${command}: ${r.status}`);
  return r;
}

/** What the relay serves for one account, in the manifest's shape. */
async function served(c: ImapTestClient) {
  await ok(c, "ENABLE CONDSTORE");
  const names = (await ok(c, 'LIST "" "*"')).untagged.map(lastName).sort();
  const mailboxes: Manifest["accounts"][string]["mailboxes"] = {};
  for (const name of names) {
    const ex = await ok(c, `EXAMINE "${name}"`);
    const code = (k: string) =>
      Number(ex.untagged.map((l) => new RegExp(`\\[${k} (\\d+)\\]`).exec(l)).find(Boolean)![1]);
    const f = await ok(c, "UID FETCH 1:* (UID FLAGS MODSEQ RFC822.SIZE INTERNALDATE BODY.PEEK[])");
    mailboxes[name] = {
      uidValidity: code("UIDVALIDITY"),
      uidNext: code("UIDNEXT"),
      highestModSeq: code("HIGHESTMODSEQ"),
      exists: Number(ex.untagged.map((l) => /^\* (\d+) EXISTS/.exec(l)).find(Boolean)![1]),
      messages: f.untagged.filter((l) => / FETCH \(/.test(l)).map((l) => ({
        uid: Number(/UID (\d+)/.exec(l)![1]),
        flags: /FLAGS \(([^)]*)\)/.exec(l)![1].split(" ").filter(Boolean).sort(),
        modseq: Number(/MODSEQ \((\d+)\)/.exec(l)![1]),
        size: Number(/RFC822\.SIZE (\d+)/.exec(l)![1]),
        internalDate: /INTERNALDATE "([^"]+)"/.exec(l)![1],
        sha256: createHash("sha256").update(
          l.slice(l.indexOf("}\r\n") + 3, l.lastIndexOf(")")),
        ).digest("hex"),
      })),
    };
  }
  const subscribed = (await ok(c, 'LSUB "" "*"')).untagged.map(lastName).sort();
  const metadata = devicetokens(
    (await ok(c, "GETMETADATA INBOX (/private/devicetoken)")).untagged.join("\n"),
  );
  return { mailboxes, subscribed, metadata };
}

/**
 * The device tokens a METADATA response carries: the value, not its form (the answer is written
 * as Dovecot writes it since release 378cb07, a literal and INBOX bare).
 */
function devicetokens(response: string): string {
  return `devicetoken=${metadataValue(response, "/private/devicetoken") ?? "NIL"}`;
}

/** "key = value" pairs of `tern settings get` (the doc comments may change between versions). */
function settingValues(text: string): string[] {
  return text.split("\n").map((l) => l.split("\t")[0]).filter(Boolean).sort();
}

/**
 * The fixture's queued mail is for a relay on a loopback address: allowed, it stays queued as
 * it was (deferred while nothing answers there) instead of bouncing as not public.
 */
const LOOPBACK_PEERS = "outbound_allow_private = true";

/** Starts today's tern on `dir` and checks everything the old release served, then stops it. */
async function servedAsBefore(manifest: Manifest, dir: string) {
  const relay = await startTern(LOOPBACK_PEERS, { dir });
  try {
    for (const user of manifest.users) {
      const { client } = await ImapTestClient.connect(
        { hostname: "127.0.0.1", port: relay.port("imaps") },
        { tls: true, caPem: relay.caPem },
      );
      try {
        assert.ok((await client.login(user, manifest.password)).ok, user);
        const want = manifest.accounts[user];
        assert.deepEqual(
          await served(client),
          { ...want, metadata: devicetokens(want.metadata) },
          user,
        );
        // Expunges made by the old release still reach a resyncing client (RFC 7162).
        await ok(client, "ENABLE QRESYNC");
        const inbox = manifest.accounts[user].mailboxes.INBOX;
        const sel = await ok(client, `EXAMINE INBOX (QRESYNC (${inbox.uidValidity} 1))`);
        const vanished = sel.untagged.find((l) => l.startsWith("* VANISHED (EARLIER)"));
        const live = new Set(inbox.messages.map((m) => m.uid));
        const gone = Array.from({ length: inbox.uidNext - 1 }, (_, i) => i + 1)
          .filter((u) => !live.has(u));
        if (gone.length) {
          assert.ok(vanished, `${user}: no VANISHED in ${sel.untagged.join("\n")}`);
          for (const u of gone) {
            assert.ok(vanished.includes(String(u)), `${user}: ${u} not in ${vanished}`);
          }
        }
      } finally {
        client.close();
      }
    }
    const config = `${dir}/tern.toml`;
    const queue = await runTern(["queue", "list", "--config", config]);
    assert.equal(queue.code, 0, queue.stderr);
    assert.equal(
      queue.stdout.trim().split("\n").filter((l) => l.includes("<")).length,
      manifest.queue,
      queue.stdout,
    );
    const settings = await runTern(["settings", "get", "--config", config]);
    // Every setting keeps its value; settings added since then appear with their defaults.
    const now = new Set(settingValues(settings.stdout));
    for (const kv of settingValues(manifest.settings)) assert.ok(now.has(kv), `setting ${kv}`);
  } finally {
    await relay.stop();
  }
}

Deno.test({
  name: "a data directory of release 378cb07 migrates and is served unchanged",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const manifest: Manifest = JSON.parse(await Deno.readTextFile(`${FIXTURE}manifest.json`));
    const dir = await Deno.makeTempDir({ prefix: "tern-upgrade-" });
    try {
      await Deno.mkdir(`${dir}/data`, { mode: 0o700 });
      await Deno.copyFile(`${FIXTURE}datadir/tern.db`, `${dir}/data/tern.db`);
      // First start: the schema migrates at once, the data steps run in the background.
      await servedAsBefore(manifest, dir);
      // tern migrate finishes the data steps (with progress) if serve has not already.
      const migrate = await runTern(["migrate", "--config", `${dir}/tern.toml`]);
      assert.equal(migrate.code, 0, migrate.stderr);
      assert.match(migrate.stdout, /schema up to date: \d+\/\d+ migration\(s\) applied/);
      const db = new DatabaseSync(`${dir}/data/tern.db`, { readOnly: true });
      try {
        const legacy = db.prepare(
          "SELECT COUNT(*) AS n FROM bodies WHERE file_id IS NULL AND size > 131072",
        ).get() as { n: number };
        assert.equal(legacy.n, 0, "large bodies moved to files");
        const mode = db.prepare("PRAGMA auto_vacuum").get() as { auto_vacuum: number };
        assert.equal(mode.auto_vacuum, 2, "incremental vacuum");
      } finally {
        db.close();
      }
      let files = 0;
      for await (const e of Deno.readDir(`${dir}/data/bodies`)) {
        if (e.isFile && /^[0-9a-f]{32}$/.test(e.name)) files++;
      }
      assert.equal(files, 1);
      // Second start: everything is served from its new place, still the same.
      await servedAsBefore(manifest, dir);
      const store = openSqliteStore(`${dir}/data/tern.db`);
      try {
        assert.equal(
          store.db.all("SELECT * FROM schema_migrations").length,
          MIGRATIONS.length,
          "every migration applied",
        );
        assert.equal((await store.getToken("fixture-token"))?.uses, 1);
        assert.equal(await store.isBlocked("x@spam.example"), true);
        const due = await store.dueRecipients(Number.MAX_SAFE_INTEGER, 100);
        assert.equal(due.length, manifest.queueRows.n);
        for (const r of due) {
          const e = (await store.getQueueEntry(r.queueId))!;
          assert.match(new TextDecoder().decode((await store.readBody(e.bodyId))!), /PGP MESSAGE/);
        }
      } finally {
        await store.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// The generation that configured the fixture's accounts (the top-level node_modules link may
// point at another of the cores installed side by side).
const DC_BINARY = CORES["2.57"].binary;

type Ev<K> = Extract<T.EventType, { kind: K }>;

/** A Delta Chat core on an account directory of the fixture, recording its Info log. */
async function deltaChatCore(accountsDir: string) {
  const proc = spawn(DC_BINARY, [], {
    env: { ...Deno.env.toObject(), DC_ACCOUNTS_PATH: accountsDir, RUST_LOG: "warn" },
    stdio: ["pipe", "pipe", "ignore"],
  });
  const dc = new StdioDeltaChat(proc.stdin, proc.stdout, true);
  const [acc] = await dc.rpc.getAllAccountIds();
  const log: string[] = [];
  dc.getContextEvents(acc).on("ALL", (e) => {
    if (e.kind === "Info" || e.kind === "Warning" || e.kind === "Error") {
      log.push(`${e.kind}: ${e.msg}`);
    }
  });
  const wait = <K extends T.EventType["kind"]>(
    kind: K,
    match: (e: Ev<K>) => boolean,
    what: string,
  ) =>
    new Promise<Ev<K>>((resolve, reject) => {
      const events = dc.getContextEvents(acc);
      const on = (e: Ev<K>) => {
        if (!match(e)) return;
        clearTimeout(timer);
        events.off(kind, on as never);
        resolve(e);
      };
      const timer = setTimeout(() => {
        events.off(kind, on as never);
        reject(new Error(`no ${what}:\n${log.slice(-40).join("\n")}`));
      }, 45_000);
      events.on(kind, on as never);
    });
  return {
    dc,
    acc,
    log,
    wait,
    async stop() {
      await dc.rpc.stopIo(acc).catch(() => {});
      dc.close();
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** UIDs named in Delta Chat's "Starting UID FETCH of message set "…"" lines. */
function fetchedUids(log: string[]): number[] {
  const out: number[] = [];
  for (const l of log) {
    const m = /Starting UID FETCH of message set "([^"]+)"/.exec(l);
    if (!m) continue;
    for (const part of m[1].split(",")) {
      const [a, b] = part.split(":").map(Number);
      for (let u = a; u <= (b ?? a); u++) out.push(u);
    }
  }
  return out;
}

Deno.test({
  name: "Delta Chat cores configured against release 378cb07 carry on without downloading again",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const manifest: Manifest = JSON.parse(await Deno.readTextFile(`${FIXTURE}manifest.json`));
    const dir = await Deno.makeTempDir({ prefix: "tern-upgrade-dc-" });
    const cores: Awaited<ReturnType<typeof deltaChatCore>>[] = [];
    let relay: Awaited<ReturnType<typeof startTern>> | null = null;
    try {
      await Deno.mkdir(`${dir}/data`, { mode: 0o700 });
      await Deno.copyFile(`${FIXTURE}datadir/tern.db`, `${dir}/data/tern.db`);
      await new Deno.Command("cp", { args: ["-r", `${FIXTURE}deltachat`, `${dir}/dc`] }).output();
      // Where each device left off: what it must not fetch again.
      const synced: Record<string, { uidValidity: number; uidNext: number; known: Set<string> }> =
        {};
      for (const name of ["dora", "eric"]) {
        for await (const e of Deno.readDir(`${dir}/dc/${name}`)) {
          if (!e.isDirectory) continue;
          const db = new DatabaseSync(`${dir}/dc/${name}/${e.name}/dc.db`, { readOnly: true });
          const row = db.prepare(
            "SELECT uidvalidity, uid_next FROM imap_sync WHERE folder = 'INBOX'",
          )
            .get() as { uidvalidity: number; uid_next: number };
          const known = db.prepare("SELECT rfc724_mid FROM imap").all() as { rfc724_mid: string }[];
          db.close();
          synced[name] = {
            uidValidity: row.uidvalidity,
            uidNext: row.uid_next,
            known: new Set(known.map((r) => r.rfc724_mid)),
          };
        }
      }
      relay = await startTern(LOOPBACK_PEERS, { dir });
      const [dora, eric] = [
        await deltaChatCore(`${dir}/dc/dora`),
        await deltaChatCore(`${dir}/dc/eric`),
      ];
      cores.push(dora, eric);
      // The relay listens on other ports now: the account's server settings follow.
      for (const c of cores) {
        const [t] = await c.dc.rpc.listTransports(c.acc);
        await c.dc.rpc.addOrUpdateTransport(c.acc, {
          ...t,
          imapPort: relay.port("imaps"),
          smtpPort: relay.port("submissions"),
        });
        const idle = c.wait("ImapInboxIdle", () => true, "an idle inbox");
        await c.dc.rpc.startIo(c.acc);
        await idle;
      }
      const chatWith = async (c: typeof dora, address: string) =>
        c.dc.rpc.createChatByContactId(
          c.acc,
          (await c.dc.rpc.lookupContactIdByAddr(c.acc, address))!,
        );
      const doraChat = await chatWith(dora, manifest.deltachat.eric.address);
      const ericChat = await chatWith(eric, manifest.deltachat.dora.address);
      const textsOf = async (c: typeof dora, chat: number) =>
        await Promise.all(
          (await c.dc.rpc.getMessageIds(c.acc, chat, false, false)).map(async (id) =>
            (await c.dc.rpc.getMessage(c.acc, id)).text
          ),
        );
      // What eric sent while dora was away (stored by the old release) arrives now.
      for (
        const t = Date.now();
        !(await textsOf(dora, doraChat)).includes("while dora was away");
      ) {
        assert.ok(
          Date.now() - t < 45_000,
          `dora never got the mail sent while away:\n${dora.log.join("\n")}`,
        );
        await dora.wait("IncomingMsg", () => true, "the mail sent while away").catch(() => {});
      }
      const got = dora.wait("IncomingMsg", () => true, "the message sent after the upgrade");
      await eric.dc.rpc.miscSendTextMessage(eric.acc, ericChat, "after the upgrade from eric");
      const msg = await dora.dc.rpc.getMessage(dora.acc, (await got).msgId);
      assert.equal(msg.text, "after the upgrade from eric");
      assert.equal(msg.chatId, doraChat, "the same verified chat");
      const reply = eric.wait("IncomingMsg", () => true, "dora's reply");
      await dora.dc.rpc.miscSendTextMessage(dora.acc, doraChat, "after the upgrade from dora");
      await reply;

      // Same UIDVALIDITY, no resync, nothing from before fetched again, nothing twice.
      for (const [name, c, chat] of [["dora", dora, doraChat], ["eric", eric, ericChat]] as const) {
        const inbox = manifest.accounts[manifest.deltachat[name].address].mailboxes.INBOX;
        assert.equal(synced[name].uidValidity, inbox.uidValidity);
        const fetched = fetchedUids(c.log);
        assert.ok(fetched.length > 0, `${name} fetched the new mail:\n${c.log.join("\n")}`);
        assert.ok(
          fetched.every((u) => u >= synced[name].uidNext),
          `${name} fetched ${fetched}, had seen up to ${synced[name].uidNext - 1}`,
        );
        const again = c.log.map((l) => /Receiving message "([^"]+)"/.exec(l)?.[1])
          .filter((mid) => mid && synced[name].known.has(mid));
        assert.deepEqual(again, [], `${name} received again what it had`);
        const resync = c.log.filter((l) => /UID validity .* changed|resync_folder_uids/i.test(l));
        assert.deepEqual(resync, [], `${name} resynced`);
        const texts = await textsOf(c, chat);
        // Two messages since the upgrade; dora also has the one sent while it was away.
        const expected = manifest.deltachat[name].chatMessages + 2 + (name === "dora" ? 1 : 0);
        assert.equal(texts.length, expected, `${name}: ${texts}`);
        assert.equal(new Set(texts).size, texts.length, `${name} shows a message twice`);
      }
    } finally {
      for (const c of cores) await c.stop();
      await relay?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
