// Body files damaged under a running store (an operator's rm, a file system losing a file's
// tail): reading such a body fails at once with an error that names it, instead of looking like a
// message expunged meanwhile (null) or promising bytes that are not there; the intact bodies read
// in the same batch are still served.

import assert from "node:assert/strict";
import { type SqliteStore, startSqliteStore } from "./mod.ts";
import { isBodyFileName } from "./body_files.ts";
import { SEGMENT_MIN } from "./segments.ts";
import { bytesBody } from "../message_input.ts";

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 29 + seed * 11 + (i >> 8)) & 0xff;
  return out;
}

/** Appends `bytes` to the account's INBOX (through a spool file when `spooled`): its body id. */
async function appendBody(
  s: SqliteStore,
  accountId: number,
  bytes: Uint8Array,
  spooled: boolean,
): Promise<number> {
  const spool = s.createSpool();
  try {
    if (spooled) await spool.write(bytes);
    const r = await s.append({
      accountId,
      mailboxName: "INBOX",
      body: spooled ? await spool.finish() : bytesBody(bytes),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e9,
    });
    const [m] = await s.getMessages(r.mailboxId, [r.uid]);
    return m.bodyId;
  } finally {
    await spool.discard();
  }
}

Deno.test("a body whose file was removed or cut short is refused by name; others still read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-damaged-" });
  const s = await startSqliteStore(`${dir}/t.db`, { tinyBytes: 0 });
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const put = (bytes: Uint8Array) => appendBody(s, a.id, bytes, bytes.length > 128 * 1024);
    const inline = await put(pattern(1000, 1));
    const segA = await put(pattern(SEGMENT_MIN + 100, 2));
    const segB = await put(pattern(SEGMENT_MIN + 200, 3));
    const gone = await put(pattern(300_000, 4));
    const short = await put(pattern(300_000, 5));
    const fileOf = (id: number) =>
      s.db.get<{ name: string }>(
        "SELECT f.name FROM bodies b JOIN body_files f ON f.id = b.file_id WHERE b.id = ?",
        id,
      )!.name;
    assert.equal(fileOf(segA), fileOf(segB), "the two mid-sized bodies share a segment");
    assert.ok(isBodyFileName(fileOf(gone)));

    await Deno.remove(`${dir}/bodies/${fileOf(gone)}`);
    await Deno.truncate(`${dir}/bodies/${fileOf(short)}`, 100_000);
    // The segment loses its second body's tail: the first body in it is intact.
    const segEnd = s.db.get<{ end: number }>(
      "SELECT file_offset + size - length(data) AS end FROM bodies WHERE id = ?",
      segA,
    )!.end;
    await Deno.truncate(`${dir}/bodies/${fileOf(segB)}`, segEnd + 10);

    await assert.rejects(s.openBody(gone), new RegExp(`body ${gone}.*${fileOf(gone)}.*missing`));
    await assert.rejects(s.openBody(short), new RegExp(`body ${short}.*shorter`));
    await assert.rejects(s.openBody(segB), new RegExp(`body ${segB}.*shorter`));

    // One damaged body in a batch does not take the others with it.
    const batch = await s.readSmallBodies([inline, segA, segB]);
    assert.deepEqual(batch.get(inline)?.bytes, pattern(1000, 1));
    assert.deepEqual(batch.get(segA)?.bytes, pattern(SEGMENT_MIN + 100, 2));
    assert.equal(batch.has(segB), false, "the damaged body is left to openBody");
    assert.deepEqual(await s.readBody(segA), pattern(SEGMENT_MIN + 100, 2));
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bodies directory removed under a running store is made again, with its space reserve", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-damaged-" });
  const s = await startSqliteStore(`${dir}/t.db`, { tinyBytes: 0 });
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const put = (bytes: Uint8Array, spooled: boolean) => appendBody(s, a.id, bytes, spooled);
    await put(pattern(SEGMENT_MIN + 100, 1), false);
    // An operator's clean-up takes the spool directory, or the whole bodies directory.
    await Deno.remove(`${dir}/bodies/tmp`, { recursive: true });
    const spooled = await put(pattern(300_000, 2), true);
    assert.deepEqual(await s.readBody(spooled), pattern(300_000, 2));
    await Deno.remove(`${dir}/bodies`, { recursive: true });
    const segment = await put(pattern(SEGMENT_MIN + 300, 3), false);
    const large = await put(pattern(200_000, 4), true);
    assert.deepEqual(await s.readBody(segment), pattern(SEGMENT_MIN + 300, 3));
    assert.deepEqual(await s.readBody(large), pattern(200_000, 4));
    // The space reserve went with the directory; the writer makes it again (it looks every few
    // seconds), so a full disk later still takes deletions.
    const reserve = `${dir}/bodies/reserve`;
    const has = () => Deno.stat(reserve).then((st) => st.size > 0, () => false);
    for (let i = 2; !(await has()); i++) {
      assert.ok(i < 150, "the reserve is made again within 30 s");
      await s.recordLogin(a.id, i);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});
