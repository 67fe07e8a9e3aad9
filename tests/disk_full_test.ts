// A full disk refuses mail with a temporary 452 and corrupts nothing; when space returns, mail
// flows again. Runs on a small tmpfs (needs root, as in CI).

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { armoredPayload, pgpMime } from "./support/messages.ts";
import { DatabaseSync } from "node:sqlite";
import { requireAll, requireRoot, requireTool } from "./support/tools.ts";

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
