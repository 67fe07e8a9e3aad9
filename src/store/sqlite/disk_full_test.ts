// A full disk under the threaded store: writes fail with an error callers recognise ("database or
// disk is full" from SQLite, ENOSPC from a spool), reads keep working (they need no write),
// deletions and flag changes still work (the space reserve), and the writer recovers by itself
// once space returns. On a small tmpfs (needs root, as in CI).

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { startSqliteStore } from "./mod.ts";
import { bytesBody } from "../message_input.ts";

const isRoot = Deno.uid() === 0;
const FULL = /database or disk is full|SQLITE_FULL|ENOSPC/;

async function sh(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >> 10)) & 0xff;
  return out;
}

Deno.test({
  name: "full disk: writes fail recognisably, reads go on, the writer recovers when space returns",
  ignore: !isRoot,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "tern-store-full-" });
    const mounted = await sh("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt]);
    assert.equal(mounted.code, 0, mounted.err);
    try {
      const s = await startSqliteStore(`${mnt}/t.db`);
      try {
        const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
        const append = (bytes: Uint8Array) =>
          s.append({
            accountId: a.id,
            mailboxName: "INBOX",
            body: bytesBody(bytes),
            flags: [],
            internalDate: 1,
            defaultQuotaBytes: 1e9,
          });
        const kept = await append(pattern(50_000, 1));
        const spool = s.createSpool();
        await spool.write(pattern(300_000, 2));
        const large = await s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: await spool.finish(),
          flags: [],
          internalDate: 1,
          defaultQuotaBytes: 1e9,
        });
        await spool.discard();
        await sh("dd", ["if=/dev/zero", `of=${mnt}/filler`, "bs=64k", "count=200"]);

        // The WAL and free pages may still take a few writes; then every write fails.
        let error: unknown = null;
        for (let i = 0; i < 50 && !error; i++) {
          await append(pattern(100_000, 10 + i)).catch((err) => (error = err));
        }
        assert.ok(error, "a write failed");
        assert.match(String((error as Error).message), FULL);
        const big = s.createSpool();
        await assert.rejects(
          (async () => {
            await big.write(pattern(400_000, 3));
            await big.finish();
          })(),
          /ENOSPC/,
        );
        await big.discard();

        // Adding fails at once now, even a small write.
        await assert.rejects(append(pattern(10, 5)), FULL);

        // Reading needs no write.
        const inbox = (await s.getMailbox(a.id, "INBOX"))!;
        const msgs = await s.getMessages(inbox.id, [kept.uid, large.uid]);
        assert.equal(msgs.length, 2);
        assert.deepEqual(await s.readBody(msgs[0].bodyId), pattern(50_000, 1));
        assert.deepEqual(await s.readBody(msgs[1].bodyId), pattern(300_000, 2));
        assert.ok(await s.getAccount("a@x"));

        // Users can still make room: flags, EXPUNGE, logins (the reserve's space).
        await s.setFlags(inbox.id, { uids: [kept.uid], mode: "add", flags: ["\\Deleted"] });
        assert.deepEqual(await s.expunge(inbox.id), [kept.uid]);
        await s.recordLogin(a.id, 2);
        const extra = (await s.listMessages(inbox.id, { afterUid: large.uid, limit: 100 }))
          .map((m) => m.uid);
        assert.deepEqual(await s.removeMessages(inbox.id, extra), extra);

        await Deno.remove(`${mnt}/filler`);
        // The writer looks at the free space again every few seconds: retry until it takes it.
        let after: { uid: number } | null = null;
        for (const deadline = Date.now() + 20_000; !after && Date.now() < deadline;) {
          after = await append(pattern(1000, 4)).catch(async (err) => {
            assert.match(String(err.message), FULL);
            await new Promise((r) => setTimeout(r, 200));
            return null;
          });
        }
        assert.ok(after && after.uid > large.uid, "the writer took writes again by itself");
        assert.ok((await Deno.stat(`${mnt}/bodies/reserve`)).isFile, "the reserve is back");
        const mb = (await s.getMailbox(a.id, "INBOX"))!;
        const all = await s.listMessages(mb.id, { afterUid: 0, limit: 1000 });
        assert.equal(mb.messages, all.length);
        assert.equal(await s.usedBytes(a.id), all.reduce((n, m) => n + m.size, 0));
      } finally {
        await s.close();
      }
      const db = new DatabaseSync(`${mnt}/t.db`);
      const [row] = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
      db.close();
      assert.equal(row.integrity_check, "ok");
    } finally {
      await sh("umount", [mnt]);
      await Deno.remove(mnt, { recursive: true });
    }
  },
});
