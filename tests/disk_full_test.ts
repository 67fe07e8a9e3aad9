// A full disk refuses mail with a temporary 452 and corrupts nothing; users can still log in,
// read and delete (nothing a login needs writes); when space returns, mail flows again. Runs on a
// small tmpfs (needs root, as in CI).

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { armoredPayload, pgpMime } from "./support/messages.ts";
import { DatabaseSync } from "node:sqlite";
import { requireAll, requireRoot, requireTool } from "./support/tools.ts";
import { WireClient } from "./support/wire_client.ts";

// Mounting a tmpfs needs root.
const need = requireAll(requireRoot(), requireTool("mount", "umount"));

async function sh(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name: need.title(
    "disk full: 452 4.3.1, the session goes on, nothing is corrupted, recovery when space returns",
  ),
  ignore: need.ignore,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "tern-full-" });
    const mounted = await sh("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]);
    assert.equal(mounted.code, 0, mounted.err);
    try {
      await withRelay(async (t) => {
        const a = await createAccount(t, "alice0001");
        const b = await createAccount(t, "bobby0001");
        const big = pgpMime(a.address, b.address, await armoredPayload("x".repeat(200_000)));
        const c = await SmtpTestClient.connect(t.addr("submissions"), {
          tls: true,
          caPem: t.caPem,
        });
        await c.reply();
        await c.cmd("EHLO x.test");
        await c.login(a.address, a.password);
        assert.equal((await c.sendMail(a.address, [b.address], big)).code, 250);
        // Fill what is left of the disk.
        const filler = `${mnt}/filler`;
        await sh("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k", "count=200"]);
        let refused = 0;
        for (let i = 0; i < 10 && refused === 0; i++) {
          const r = await c.sendMail(a.address, [b.address], big);
          if (r.code === 452) {
            refused++;
            assert.equal(r.text, "452 4.3.1 Insufficient system storage, try again later");
          }
        }
        assert.equal(refused, 1, "a full disk is refused with 452");
        assert.equal((await c.cmd("NOOP")).code, 250, "the session goes on");
        await Deno.remove(filler);
        assert.equal((await c.sendMail(a.address, [b.address], big)).code, 250, "recovered");
        c.close();
        const account = (await t.relay.services.store.getAccount(b.address))!;
        const inbox = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
        for (const m of await t.relay.services.store.listMessages(inbox.id)) {
          assert.ok((await t.relay.services.store.readBody(m.bodyId))!.length > 100_000);
        }
      }, { overrides: { data_dir: `${mnt}/data`, max_user_send_burst_size: 100 } });
      const db = new DatabaseSync(`${mnt}/data/tern.db`);
      const [row] = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
      db.close();
      assert.equal(row.integrity_check, "ok");
    } finally {
      await sh("umount", [mnt]);
      await Deno.remove(mnt, { recursive: true });
    }
  },
});

Deno.test({
  name: need.title("a read-only data directory stops tern serve with a one-line reason"),
  ignore: need.ignore,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "tern-ro-" });
    const mounted = await sh("mount", ["-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", mnt]);
    assert.equal(mounted.code, 0, mounted.err);
    const conf = await Deno.makeTempFile({ suffix: ".toml" });
    try {
      await Deno.writeTextFile(conf, `domain = "127.0.0.1"\ndata_dir = "${mnt}/data"\n`);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.ts", "serve", "--config", conf],
        cwd: new URL("../", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(out.stderr).trim();
      assert.equal(out.code, 1, err);
      assert.match(err, /read-only/i);
      assert.ok(!/\n\s+at /.test(err), `no stack trace: ${err}`);
    } finally {
      await sh("umount", [mnt]);
      await Deno.remove(mnt, { recursive: true });
      await Deno.remove(conf);
    }
  },
});

/** An IMAP session of `user` over 993. */
async function imap(port: number, caPem: string, user: { address: string; password: string }) {
  const c = await WireClient.connect(port, { tlsCa: caPem });
  await c.line();
  const r = await c.cmd("l", `LOGIN ${user.address} ${user.password}`);
  assert.match(r.status, /^OK/, `login on a full disk: ${r.status}`);
  return c;
}

Deno.test({
  name: need.title(
    "disk full: IMAP login, reading, EXPUNGE and retention go on; APPEND fails at once; recovery",
  ),
  ignore: need.ignore,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "tern-full-" });
    const mounted = await sh("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]);
    assert.equal(mounted.code, 0, mounted.err);
    let clock = Date.now();
    try {
      await withRelay(async (t) => {
        const a = await createAccount(t, "alice0001");
        const port = t.addr("imaps").port;
        const setup = await imap(port, t.caPem, a);
        const message = "From: <alice0001@x.test>\r\nSubject: x\r\n\r\n" + "y".repeat(100_000) +
          "\r\n";
        for (let i = 0; i < 4; i++) {
          await setup.write(`a${i} APPEND INBOX {${message.length}+}\r\n${message}\r\n`);
          assert.match((await setup.response(`a${i}`)).status, /^OK/);
        }
        setup.close();
        // Nothing left on the disk.
        await sh("dd", ["if=/dev/zero", `of=${mnt}/filler`, "bs=64k", "count=200"]);

        // A new session logs in (the login time stamp is best-effort) and reads.
        const c = await imap(port, t.caPem, a);
        assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
        const read = await c.cmd("f", "FETCH 1 BODY.PEEK[]");
        assert.match(read.status, /^OK/);
        assert.ok(read.untagged[0].includes(`BODY[] <${message.length} bytes>`), read.untagged[0]);
        // A write fails at once, with Dovecot's code for a server-side failure.
        await c.write(`w APPEND INBOX {${message.length}+}\r\n${message}\r\n`);
        assert.match((await c.response("w")).status, /^NO \[SERVERBUG\] /);
        // Deleting goes on: that is how space is freed.
        assert.match((await c.cmd("d", "STORE 1 +FLAGS.SILENT (\\Deleted)")).status, /^OK/);
        const expunged = await c.cmd("e", "EXPUNGE");
        assert.match(expunged.status, /^OK/);
        assert.deepEqual(expunged.untagged, ["* 1 EXPUNGE"]);
        // Retention too: three weeks later every message is old enough to go.
        clock += 21 * 86400_000;
        assert.match(await t.relay.maintenance.run("expire-mail"), /^3 messages deleted/);

        // Space returns: writes work again, in the same session, once the store has noticed
        // (it looks again every few seconds).
        await Deno.remove(`${mnt}/filler`);
        const deadline = Date.now() + 30_000;
        let status = "";
        for (let i = 0; !status.startsWith("OK") && Date.now() < deadline; i++) {
          if (i > 0) await new Promise((r) => setTimeout(r, 250));
          await c.write(`r${i} APPEND INBOX {${message.length}+}\r\n${message}\r\n`);
          status = (await c.response(`r${i}`)).status;
          if (!status.startsWith("OK")) assert.match(status, /^NO \[SERVERBUG\] /);
        }
        assert.match(status, /^OK/, "APPEND works again within 30 s of space returning");
        c.close();
      }, {
        overrides: { data_dir: `${mnt}/data` },
        relay: { now: () => clock },
      });
    } finally {
      await sh("umount", [mnt]);
      await Deno.remove(mnt, { recursive: true });
    }
  },
});
