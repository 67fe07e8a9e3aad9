// tern backup while the relay runs and delivers; tern restore into an empty data directory; the
// restored database holds the same accounts and mail.

import assert from "node:assert/strict";
import { runTern } from "./support/util.ts";
import { startTern } from "./support/tern_process.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage } from "./support/messages.ts";
import { openSqliteStore } from "../src/store/sqlite/mod.ts";
import { DatabaseSync } from "node:sqlite";
import { existsSync } from "node:fs";

const dec = new TextDecoder();

Deno.test("backup while running, restore into an empty data directory", async () => {
  const relay = await startTern();
  const work = await Deno.makeTempDir({ prefix: "tern-backup-" });
  try {
    const config = relay.dataDir.replace(/\/data$/, "/tern.toml");
    const users = ["alice0001", "bobby0001"].map((u) => ({
      address: `${u}@[127.0.0.1]`,
      password: "password-123456",
    }));
    for (const u of users) {
      const r = await runTern(["accounts", "create", u.address, u.password, "--config", config]);
      assert.equal(r.code, 0, r.stderr);
    }
    const caPem = await Deno.readTextFile(`${relay.dataDir}/tls/selfsigned-ca.pem`);
    const c = await SmtpTestClient.connect(
      { hostname: "127.0.0.1", port: relay.port("submissions") },
      { tls: true, caPem },
    );
    await c.reply();
    await c.cmd("EHLO x.test");
    await c.login(users[0].address, users[0].password);
    for (let i = 0; i < 3; i++) {
      const msg = await encryptedMessage(users[0].address, users[1].address);
      assert.equal((await c.sendMail(users[0].address, [users[1].address], msg)).code, 250);
    }
    // The backup runs while the relay is serving and delivering.
    const sending = (async () => {
      for (let i = 0; i < 5; i++) {
        const msg = await encryptedMessage(users[0].address, users[1].address);
        await c.sendMail(users[0].address, [users[1].address], msg);
      }
    })();
    const b = await runTern(["backup", `${work}/snapshot.db`, "--config", config]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /Backup written to/);
    await sending;
    c.close();
    assert.equal((await runTern(["backup", `${work}/snapshot.db`, "--config", config])).code, 1);

    const restoreToml = `${work}/restore.toml`;
    await Deno.writeTextFile(restoreToml, `domain = "127.0.0.1"\ndata_dir = "${work}/restored"\n`);
    const r = await runTern(["restore", `${work}/snapshot.db`, "--config", restoreToml]);
    assert.equal(r.code, 0, r.stderr);
    const again = await runTern(["restore", `${work}/snapshot.db`, "--config", restoreToml]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists/);
    await Deno.writeTextFile(`${work}/junk.db`, "not a database");
    const junk = await runTern(["restore", `${work}/junk.db`, "--config", `${work}/junk.toml`]);
    assert.notEqual(junk.code, 0);

    const store = openSqliteStore(`${work}/restored/tern.db`);
    try {
      const bob = (await store.getAccount(users[1].address))!;
      const inbox = (await store.getMailbox(bob.id, "INBOX"))!;
      assert.ok(inbox.messages >= 3 && inbox.messages <= 8, String(inbox.messages));
      for (const m of await store.listMessages(inbox.id)) {
        assert.match(dec.decode((await store.readBody(m.bodyId))!), /BEGIN PGP MESSAGE/);
      }
    } finally {
      await store.close();
    }
  } finally {
    await relay.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a restore that fails part-way leaves no database behind, and can be run again", async () => {
  const work = await Deno.makeTempDir({ prefix: "tern-restore-" });
  try {
    const source = `${work}/source.toml`;
    await Deno.writeTextFile(source, `domain = "127.0.0.1"\ndata_dir = "${work}/source"\n`);
    const created = await runTern([
      "accounts",
      "create",
      "alice0001@[127.0.0.1]",
      "password-123456",
      "--config",
      source,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const b = await runTern(["backup", `${work}/snapshot.db`, "--config", source]);
    assert.equal(b.code, 0, b.stderr);

    // The body files cannot be written (as on a full disk): the restore stops after the database
    // was copied. A tern.db left behind would hold messages whose bodies are missing, and would
    // make every later restore refuse ("exists").
    const target = `${work}/restored`;
    await Deno.mkdir(target);
    await Deno.writeTextFile(`${target}/bodies`, "in the way");
    const toml = `${work}/restore.toml`;
    await Deno.writeTextFile(toml, `domain = "127.0.0.1"\ndata_dir = "${target}"\n`);
    const failed = await runTern(["restore", `${work}/snapshot.db`, "--config", toml]);
    assert.equal(failed.code, 1, failed.stderr);
    assert.equal(failed.stderr.trim().split("\n").length, 1, failed.stderr);
    const left = [...Deno.readDirSync(target)].map((e) => e.name).filter((n) =>
      n.startsWith("tern.db")
    );
    assert.deepEqual(left, []);

    await Deno.remove(`${target}/bodies`);
    const r = await runTern(["restore", `${work}/snapshot.db`, "--config", toml]);
    assert.equal(r.code, 0, r.stderr);
    const store = openSqliteStore(`${target}/tern.db`);
    try {
      assert.ok(await store.getAccount("alice0001@[127.0.0.1]"));
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a backup killed part-way leaves no file under the backup's name", async () => {
  const work = await Deno.makeTempDir({ prefix: "tern-backup-kill-" });
  try {
    const source = `${work}/source.toml`;
    await Deno.writeTextFile(source, `domain = "127.0.0.1"\ndata_dir = "${work}/source"\n`);
    const created = await runTern([
      "accounts",
      "create",
      "alice0001@[127.0.0.1]",
      "password-123456",
      "--config",
      source,
    ]);
    assert.equal(created.code, 0, created.stderr);
    // A body file that is a FIFO: the backup blocks reading it, after the database snapshot is
    // written and before any body is in it, as a backup of many large bodies would be when the
    // operator presses Ctrl-C or the machine goes down.
    const name = "0123456789abcdef0123456789abcdef";
    const db = new DatabaseSync(`${work}/source/tern.db`);
    db.prepare("INSERT INTO body_files (name, size, created_at, live) VALUES (?, 1, 0, 1)").run(
      name,
    );
    db.close();
    const mk = await new Deno.Command("mkfifo", { args: [`${work}/source/bodies/${name}`] })
      .output();
    assert.equal(mk.code, 0);

    const file = `${work}/snapshot.db`;
    const p = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "backup", file, "--config", source],
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Until the snapshot is in the file: VACUUM INTO has run, the bodies are being copied.
    const started = Date.now();
    while (Date.now() - started < 30_000) {
      const sizes = [...Deno.readDirSync(work)].filter((e) => e.name.startsWith("snapshot.db"))
        .map((e) => Deno.statSync(`${work}/${e.name}`).size);
      if (sizes.some((s) => s > 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    p.kill("SIGKILL");
    await p.status;
    // A file under the backup's name would look finished, and restore would take it: a database
    // whose messages have no bodies.
    assert.equal(existsSync(file), false);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
