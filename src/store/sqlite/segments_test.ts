// Body segments (segments.ts): bodies from SEGMENT_MIN up to the inline limit share an appended
// body file; deletes lower its live count and free it with its last body; failed writes leave
// nothing pointing at their bytes; compaction moves the few live bodies of an old segment; a
// segment rotates past its maximum and after a restart; backups carry it; kill -9 loses no
// acknowledged body.

import assert from "node:assert/strict";
import {
  MIGRATIONS,
  openSqliteStore,
  restoreBodyFiles,
  type SqliteStore,
  startSqliteStore,
} from "./mod.ts";
import { isBodyFileName } from "./body_files.ts";
import { Engine } from "./engine.ts";
import { SEGMENT_MIN } from "./segments.ts";
import { bytesBody } from "../message_input.ts";
import { requireTool } from "../../../tests/support/tools.ts";

const enc = new TextEncoder();
const CONFIG = new URL("../../../deno.json", import.meta.url).pathname;

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 13 + seed + (i >> 9)) & 0xff;
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && isBodyFileName(e.name)) out.push(e.name);
  return out.sort();
}

/** A store on `dir/t.db` (kept on close, so it can be opened again), with an optional clock. */
function openAt(dir: string, threaded: boolean, now?: () => number): Promise<SqliteStore> {
  return threaded
    ? startSqliteStore(`${dir}/t.db`, { tinyBytes: 0, now })
    : Promise.resolve(openSqliteStore(`${dir}/t.db`, { now }));
}

interface Seg {
  id: number;
  name: string;
  size: number;
  live: number;
  created_at: number;
}

function segments(s: SqliteStore): Seg[] {
  return s.db.all<Seg>(
    "SELECT id, name, size, live, created_at FROM body_files WHERE live IS NOT NULL ORDER BY id",
  );
}

/** Every segment's live count is what its bodies keep in it, and each body lies within it. */
function checkLive(s: SqliteStore): void {
  for (const f of segments(s)) {
    const r = s.db.get<{ n: number; end: number }>(
      `SELECT coalesce(sum(size - length(data)), 0) AS n,
       coalesce(max(file_offset + size - length(data)), 0) AS end FROM bodies WHERE file_id = ?`,
      f.id,
    )!;
    assert.equal(f.live, r.n, `live bytes of segment ${f.id}`);
    assert.ok(r.end <= f.size, `bodies of segment ${f.id} end within its committed size`);
  }
}

/** Stores `bytes` through a spool (as SMTP does) for one target; returns where it went. */
async function deliver(
  s: SqliteStore,
  accountId: number,
  bytes: Uint8Array,
  head?: Uint8Array,
  skip?: number,
) {
  const spool = s.createSpool();
  await spool.write(bytes);
  try {
    const [o] = await s.deliver({
      body: await spool.finish(),
      head,
      skip,
      internalDate: 1,
      targets: [{ accountId, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1e9,
    });
    assert.ok(o.ok);
    return o;
  } finally {
    await spool.discard();
  }
}

async function bodyIdOf(s: SqliteStore, mailboxId: number, uid: number): Promise<number> {
  const [m] = await s.getMessages(mailboxId, [uid]);
  return m.bodyId;
}

async function readsBack(s: SqliteStore, bodyId: number, want: Uint8Array, what: string) {
  assert.deepEqual(await s.readBody(bodyId), want, what);
}

for (const threaded of [false, true]) {
  const mode = threaded ? "threaded" : "in-process";

  Deno.test(`${mode}: mid-sized bodies share one segment and read back whole and in ranges`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
    const s = await openAt(dir, threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const stored: { bodyId: number; want: Uint8Array; head: number }[] = [];
      for (let i = 0; i < 12; i++) {
        const bytes = pattern(SEGMENT_MIN + i * 8_000, i);
        const head = i % 2 ? enc.encode(`X-Local: ${i}\r\n`) : undefined;
        const o = await deliver(s, a.id, bytes, head);
        const want = head ? concat(head, bytes) : bytes;
        stored.push({
          bodyId: await bodyIdOf(s, o.mailboxId, o.uid),
          want,
          head: head?.length ?? 0,
        });
      }
      // A new head in place of the first 1000 bytes (as header cleanup delivers).
      const skipped = await deliver(s, a.id, pattern(70_000, 30), enc.encode("X-New: 1\r\n"), 1000);
      stored.push({
        bodyId: await bodyIdOf(s, skipped.mailboxId, skipped.uid),
        want: concat(enc.encode("X-New: 1\r\n"), pattern(70_000, 30).subarray(1000)),
        head: 10,
      });
      for (let i = 0; i < 4; i++) {
        const spool = s.createSpool();
        const bytes = pattern(100_000 + i, 50 + i);
        await spool.write(bytes);
        const r = await s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: await spool.finish(),
          flags: [],
          internalDate: 2,
          defaultQuotaBytes: 1e9,
        });
        await spool.discard();
        stored.push({ bodyId: await bodyIdOf(s, r.mailboxId, r.uid), want: bytes, head: 0 });
      }
      assert.equal((await names(dir + "/bodies")).length, 1, "one body file for 17 bodies");
      assert.deepEqual(await names(dir + "/bodies/tmp"), []);
      assert.equal(segments(s).length, 1);
      assert.equal(
        s.db.get<{ n: number }>("SELECT count(*) AS n FROM bodies WHERE file_id IS NULL")!.n,
        0,
      );
      checkLive(s);
      for (const [i, b] of stored.entries()) {
        await readsBack(s, b.bodyId, b.want, `body ${i}`);
        const r = (await s.openBody(b.bodyId))!;
        try {
          assert.equal(r.size, b.want.length);
          const at = Math.max(0, b.head - 5);
          assert.deepEqual(await r.read(at, 10), b.want.subarray(at, at + 10), "across the head");
          assert.deepEqual(await r.read(9_000, 20_000), b.want.subarray(9_000, 29_000));
          assert.deepEqual(await r.read(r.size - 7, 100), b.want.subarray(r.size - 7));
        } finally {
          await r.close();
        }
      }
      const small = await s.readSmallBodies(stored.slice(0, 3).map((b) => b.bodyId));
      for (const b of stored.slice(0, 3)) assert.deepEqual(small.get(b.bodyId)?.bytes, b.want);

      // Under SEGMENT_MIN: inline as before; past the inline limit: a file of its own.
      const inline = await deliver(s, a.id, pattern(31 * 1024, 7));
      const inlineId = await bodyIdOf(s, inline.mailboxId, inline.uid);
      const row = s.db.get<{ n: number; f: number | null }>(
        "SELECT length(data) AS n, file_id AS f FROM bodies WHERE id = ?",
        inlineId,
      )!;
      assert.deepEqual({ ...row }, { n: 31 * 1024, f: null });
      const big = await deliver(s, a.id, pattern(200_000, 8));
      assert.equal((await names(dir + "/bodies")).length, 2);
      assert.equal(segments(s).length, 1, "the large body's file is no segment");
      await readsBack(s, inlineId, pattern(31 * 1024, 7), "inline");
      await readsBack(s, await bodyIdOf(s, big.mailboxId, big.uid), pattern(200_000, 8), "large");
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${mode}: deletes lower a segment's live bytes; its last body takes the file`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
    const s = await openAt(dir, threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const uids: number[] = [];
      let mailboxId = 0;
      for (let i = 0; i < 4; i++) {
        const o = await deliver(s, a.id, pattern(40_000 + i, i));
        uids.push(o.uid);
        mailboxId = o.mailboxId;
      }
      const [seg] = segments(s);
      assert.equal(seg.live, 4 * 40_000 + 6);
      // A copy shares the body: removing the original frees nothing.
      const copy = await s.copyMessages(mailboxId, [uids[0]], mailboxId);
      await s.removeMessages(mailboxId, [uids[0]]);
      assert.equal(segments(s)[0].live, 4 * 40_000 + 6);
      await s.removeMessages(mailboxId, [copy.mapping[0][1], uids[1]]);
      assert.equal(segments(s)[0].live, 2 * 40_000 + 5);
      await s.setFlags(mailboxId, { uids: [uids[2]], mode: "add", flags: ["\\Deleted"] });
      assert.deepEqual(await s.expunge(mailboxId), [uids[2]]);
      assert.equal(segments(s)[0].live, 40_003);
      checkLive(s);
      assert.deepEqual(await names(dir + "/bodies"), [seg.name], "a body left: the file stays");
      await readsBack(s, await bodyIdOf(s, mailboxId, uids[3]), pattern(40_003, 3), "the last");
      await s.removeMessages(mailboxId, [uids[3]]);
      assert.deepEqual(await names(dir + "/bodies"), [], "unlinked with its last body");
      assert.deepEqual(segments(s), []);
      // The next body starts a new segment.
      const o = await deliver(s, a.id, pattern(50_000, 9));
      const [next] = segments(s);
      assert.notEqual(next.name, seg.name);
      assert.deepEqual(await names(dir + "/bodies"), [next.name]);
      await readsBack(s, await bodyIdOf(s, o.mailboxId, o.uid), pattern(50_000, 9), "new");
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${mode}: a write that fails after its body was appended leaves nothing pointing at it`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
    const s = await openAt(dir, threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      // internal_date is NOT NULL: the message insert fails after insertBody appended the body.
      const failing = (seed: number) =>
        s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: bytesBody(pattern(60_000, seed)),
          flags: [],
          internalDate: null as unknown as number,
          defaultQuotaBytes: 1e9,
        });
      // The first body of the store: the segment it started goes with it.
      await assert.rejects(failing(0));
      assert.deepEqual(await names(dir + "/bodies"), [], "the new segment is unlinked");
      assert.deepEqual(segments(s), []);
      // In a batch: one failing write fails alone, the others' bodies read back.
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) =>
          i === 5 ? failing(i) : s.append({
            accountId: a.id,
            mailboxName: "INBOX",
            body: bytesBody(pattern(40_000 + i, i)),
            flags: [],
            internalDate: i,
            defaultQuotaBytes: 1e9,
          })),
      );
      assert.deepEqual(results.map((r) => r.status === "rejected"), results.map((_, i) => i === 5));
      const orphans = s.db.get<{ n: number }>(
        "SELECT count(*) AS n FROM bodies WHERE id NOT IN (SELECT body_id FROM messages)",
      )!;
      assert.equal(orphans.n, 0);
      checkLive(s);
      assert.equal(segments(s).reduce((n, f) => n + f.live, 0), 11 * 40_000 + 66 - 5);
      for (const [i, r] of results.entries()) {
        if (r.status !== "fulfilled") continue;
        await readsBack(
          s,
          await bodyIdOf(s, r.value.mailboxId, r.value.uid),
          pattern(40_000 + i, i),
          `body ${i}`,
        );
      }
      // And again after a failure at the end of a segment in use.
      await assert.rejects(failing(99));
      const o = await deliver(s, a.id, pattern(45_000, 77));
      await readsBack(s, await bodyIdOf(s, o.mailboxId, o.uid), pattern(45_000, 77), "after");
      checkLive(s);
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${mode}: compaction moves an old segment's few live bodies and unlinks its file`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
    let clock = 1_000_000_000;
    let s = await openAt(dir, threaded, () => clock);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const kept = new Map<number, Uint8Array>();
      const gone: number[] = [];
      let mailboxId = 0;
      for (let i = 0; i < 10; i++) {
        // One past the inline limit, in memory (bytesBody): a file-backed reader on a segment.
        const bytes = pattern(i === 3 ? 150_000 : 40_000, i);
        const r = await s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: bytesBody(bytes),
          flags: [],
          internalDate: i,
          defaultQuotaBytes: 1e9,
        });
        mailboxId = r.mailboxId;
        if (i === 3 || i === 8) kept.set(r.uid, bytes);
        else gone.push(r.uid);
      }
      const [old] = segments(s);
      // A restart: the old segment is no longer the writer's current one.
      await s.close();
      s = await openAt(dir, threaded, () => clock);
      const fresh = await deliver(s, a.id, pattern(50_000, 42));
      kept.set(fresh.uid, pattern(50_000, 42));
      await s.removeMessages(mailboxId, gone);
      const bodyIds = new Map<number, number>();
      for (const uid of kept.keys()) bodyIds.set(uid, await bodyIdOf(s, mailboxId, uid));
      const before = (await s.openBody(bodyIds.get([...kept.keys()][0])!))!;
      assert.equal(await s.sweepBodyFiles(Date.now() - 60_000), 0, "too young to compact");
      clock += 11 * 60_000;
      try {
        assert.equal(await s.sweepBodyFiles(Date.now() - 60_000), 1, "one segment compacted");
        assert.deepEqual(await before.read(140_000, 10_000), pattern(150_000, 3).subarray(140_000));
      } finally {
        await before.close();
      }
      const segs = segments(s);
      assert.ok(!segs.some((f) => f.id === old.id), "the old segment's row is gone");
      assert.deepEqual(
        await names(dir + "/bodies"),
        segs.map((f) => f.name).sort(),
        "the old file is unlinked",
      );
      assert.equal(segs.reduce((n, f) => n + f.live, 0), 150_000 + 40_000 + 50_000);
      const onOld = s.db.get<{ n: number }>(
        "SELECT count(*) AS n FROM bodies WHERE file_id = ?",
        old.id,
      )!;
      assert.equal(onOld.n, 0, "no body points at the old segment");
      checkLive(s);
      for (const [uid, want] of kept) {
        assert.equal(await bodyIdOf(s, mailboxId, uid), bodyIds.get(uid), "the body keeps its id");
        await readsBack(s, bodyIds.get(uid)!, want, `message ${uid}`);
      }
      assert.equal(await s.sweepBodyFiles(Date.now() - 60_000), 0, "nothing left to compact");
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${mode}: a restart starts a new segment; backup and restore carry segments`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
    let s = await openAt(dir, threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const want = new Map<number, Uint8Array>();
      let mailboxId = 0;
      for (let i = 0; i < 6; i++) {
        if (i === 3) {
          await s.close();
          s = await openAt(dir, threaded);
        }
        const o = await deliver(s, a.id, pattern(35_000 + i, i));
        mailboxId = o.mailboxId;
        want.set(o.uid, pattern(35_000 + i, i));
      }
      const segs = segments(s);
      assert.equal(segs.length, 2, "the reopened store did not append to the old segment");
      assert.equal(segs[0].size, 3 * 35_000 + 3);
      assert.equal((await Deno.stat(`${dir}/bodies/${segs[0].name}`)).size, segs[0].size);
      for (const [uid, bytes] of want) {
        await readsBack(s, await bodyIdOf(s, mailboxId, uid), bytes, `${uid}`);
      }

      await s.backup(`${dir}/backup.db`);
      await Deno.mkdir(`${dir}/restored`);
      await Deno.rename(`${dir}/backup.db`, `${dir}/restored/t.db`);
      assert.equal(restoreBodyFiles(`${dir}/restored/t.db`, `${dir}/restored/bodies`), 2);
      const r = await openAt(`${dir}/restored`, threaded);
      try {
        for (const [uid, bytes] of want) {
          await readsBack(r, await bodyIdOf(r, mailboxId, uid), bytes, `restored ${uid}`);
        }
        checkLive(r);
      } finally {
        await r.close();
      }
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a segment past its maximum is left for a new one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-seg-" });
  const now = Date.now();
  const engine = new Engine(
    `${dir}/t.db`,
    { bodiesDir: `${dir}/bodies`, reserveBytes: 0 },
    (db) => db.migrate(MIGRATIONS, now),
  );
  try {
    engine.files!.segments.max = 100_000;
    const run = (ops: { name: string; args: unknown[] }[]) =>
      engine.runBatch(ops.map((o) => ({ ...o, now }))).results.map((r) => {
        assert.ok(r.ok, JSON.stringify(r));
        return r.value;
      });
    const [acc] = run([{
      name: "createAccount",
      args: [{ address: "a@x", passwordHash: "h", now }],
    }]);
    const accountId = (acc as { account: { id: number } }).account.id;
    const append = (i: number) => ({
      name: "append",
      args: [{
        accountId,
        mailboxName: "INBOX",
        body: bytesBody(pattern(40_000, i)),
        flags: [],
        internalDate: i,
        defaultQuotaBytes: 1e9,
      }],
    });
    // Five in one transaction, then five alone.
    run(Array.from({ length: 5 }, (_, i) => append(i)));
    for (let i = 5; i < 10; i++) run([append(i)]);
    const segs = engine.db.all<{ id: number; size: number }>(
      "SELECT id, size FROM body_files WHERE live IS NOT NULL ORDER BY id",
    );
    assert.deepEqual(segs.map((f) => f.size), [120_000, 120_000, 120_000, 40_000]);
    assert.equal((await names(`${dir}/bodies`)).length, 4);
    const ids = engine.db.all<{ id: number }>("SELECT id FROM bodies ORDER BY id").map((r) => r.id);
    const got = engine.call({ name: "smallBodies", args: [ids, 1 << 30], now }) as Map<
      number,
      { bytes: Uint8Array }
    >;
    assert.equal(got.size, 10);
    for (const [i, id] of ids.entries()) assert.deepEqual(got.get(id)!.bytes, pattern(40_000, i));
  } finally {
    engine.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A child script (run with Deno.args[0] = dir) that can use the store and `pattern`. */
async function writeChild(dir: string, code: string): Promise<string> {
  const url = (rel: string) => JSON.stringify(new URL(rel, import.meta.url).href);
  await Deno.writeTextFile(
    `${dir}/child.ts`,
    `import { openSqliteStore, startSqliteStore } from ${url("./mod.ts")};
     import { bytesBody } from ${url("../message_input.ts")};
     ${pattern.toString()}
     ${code}`,
  );
  return `${dir}/child.ts`;
}

Deno.test("kill -9 while delivering: every acknowledged segment body is there, whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-seg-crash-" });
  try {
    // 40 KB bodies, 8 at a time (group commit); each one's index, mailbox and UID is printed
    // once the store acknowledged it.
    const script = await writeChild(
      dir,
      `const s = await startSqliteStore(Deno.args[0] + "/t.db");
       const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
       let next = 0;
       await Promise.all(Array.from({ length: 8 }, async () => {
         for (;;) {
           const i = next++;
           const [o] = await s.deliver({ body: bytesBody(pattern(40_000, i)), internalDate: i,
             targets: [{ accountId: a.id, mailboxName: "INBOX" }], defaultQuotaBytes: 1e12 });
           if (!o.ok) throw new Error("not stored");
           console.log(i, o.mailboxId, o.uid);
         }
       }));`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, script, dir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const acked: number[][] = [];
    let rest = "";
    let killed = false;
    const deadline = Date.now() + 60_000;
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const l of lines) acked.push(l.split(" ").map(Number));
      if (!killed && (acked.length >= 80 || Date.now() > deadline)) {
        child.kill("SIGKILL");
        killed = true;
      }
    }
    assert.equal((await child.status).signal, "SIGKILL", "killed, not failed on its own");
    assert.ok(acked.length >= 80, `only ${acked.length} deliveries acknowledged in 60 s`);

    const s = openSqliteStore(`${dir}/t.db`);
    try {
      for (const [i, mailboxId, uid] of acked) {
        const [m] = await s.getMessages(mailboxId, [uid]);
        assert.ok(m, `message ${i} (uid ${uid}) survived`);
        await readsBack(s, m.bodyId, pattern(40_000, i), `body ${i}`);
      }
      const files = s.db.all<{ name: string; end: number }>(
        `SELECT f.name, max(b.file_offset + b.size - length(b.data)) AS end
         FROM bodies b JOIN body_files f ON f.id = b.file_id GROUP BY f.id`,
      );
      assert.ok(files.length > 0);
      for (const f of files) {
        const size = (await Deno.stat(`${dir}/bodies/${f.name}`)).size;
        assert.ok(f.end <= size, `segment ${f.name}: rows point to ${f.end}, the file has ${size}`);
      }
      checkLive(s);
    } finally {
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const strace = requireTool("strace");

/**
 * Runs the child under strace and follows its writes: bytes written to a segment must be synced
 * before the next write to the database's WAL (the commit whose rows may point at them).
 */
async function syncOrder(dir: string, script: string) {
  const out = await new Deno.Command("strace", {
    args: [
      ...["-f", "-qq", "-y", "-o", `${dir}/trace`, "-e", "trace=pwrite64,write,fdatasync,fsync"],
      ...[Deno.execPath(), "run", "-A", "--config", CONFIG, script, dir],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const dirty = new Set<string>();
  const r = { appended: 0, synced: 0, walWrites: 0, unsynced: [] as string[] };
  for (const line of (await Deno.readTextFile(`${dir}/trace`)).split("\n")) {
    const m = /^\d+ +(\w+)\(\d+<([^>]*)>/.exec(line);
    if (!m) continue;
    const [, call, path] = m;
    if (call === "fdatasync" || call === "fsync") {
      if (dirty.delete(path)) r.synced++;
    } else if (/\/bodies\/[0-9a-f]{32}$/.test(path)) {
      dirty.add(path);
      r.appended++;
    } else if (path.endsWith("/t.db-wal")) {
      r.walWrites++;
      if (dirty.size) r.unsynced.push(line);
    }
  }
  return r;
}

Deno.test({
  name: strace.title("every byte appended to a segment is synced before the commit's WAL write"),
  ignore: strace.ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-sync-" });
    try {
      // Batches of new bodies, then a compaction step (moved bodies) after a restart.
      const script = await writeChild(
        dir,
        `let clock = 1e9;
         let s = openSqliteStore(Deno.args[0] + "/t.db", { now: () => clock });
         const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
         const put = (i) => s.append({ accountId: a.id, mailboxName: "INBOX",
           body: bytesBody(pattern(40_000, i)), flags: [], internalDate: i, defaultQuotaBytes: 1e12 });
         const uids = [];
         for (let r = 0; r < 3; r++) {
           for (const o of await Promise.all([0, 1, 2, 3].map((k) => put(r * 4 + k)))) uids.push(o.uid);
         }
         await s.close();
         s = openSqliteStore(Deno.args[0] + "/t.db", { now: () => clock });
         const mb = await s.getMailbox(a.id, "INBOX");
         await put(99);
         await s.removeMessages(mb.id, uids.slice(0, 10));
         clock += 3600_000;
         if (await s.sweepBodyFiles(0) !== 1) throw new Error("no compaction");
         await s.close();`,
      );
      const r = await syncOrder(dir, script);
      assert.deepEqual(r.unsynced.slice(0, 2), [], "WAL written while a segment is unsynced");
      assert.ok(r.appended >= 14 && r.synced >= 5 && r.walWrites > 0, JSON.stringify(r));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: strace.title(
    "a segment doomed by a write that then fails is still synced before the commit",
  ),
  ignore: strace.ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tern-seg-doom-" });
    try {
      // One batch: X (40 KB, starts a segment), Y (inline), then a removal of both that frees
      // X (its segment is doomed) and fails on Y (a temp trigger stands for any later error).
      const script = await writeChild(
        dir,
        `const { Engine } = await import(${
          JSON.stringify(new URL("./engine.ts", import.meta.url).href)
        });
         const { MIGRATIONS } = await import(${
          JSON.stringify(new URL("./mod.ts", import.meta.url).href)
        });
         const now = Date.now();
         const e = new Engine(Deno.args[0] + "/t.db", { bodiesDir: Deno.args[0] + "/bodies",
           reserveBytes: 0 }, (db) => db.migrate(MIGRATIONS, now));
         const op = (name, ...args) => ({ name, args, now });
         const acc = e.runBatch([op("createAccount", { address: "a@x", passwordHash: "h", now })])
           .results[0].value.account.id;
         const mb = e.call(op("getMailbox", acc, "INBOX")).id;
         const put = (n) => op("append", { accountId: acc, mailboxName: "INBOX", flags: [],
           body: bytesBody(pattern(n)), internalDate: 1, defaultQuotaBytes: 1e12 });
         e.db.raw.exec("CREATE TEMP TRIGGER no_y AFTER DELETE ON bodies WHEN OLD.size = 100 " +
           "BEGIN SELECT RAISE(ABORT, 'boom'); END");
         const r = e.runBatch([put(40_000), put(100), op("removeMessages", mb, [1, 2])]).results;
         if (r.map((x) => x.ok).join() !== "true,true,false") throw new Error("unexpected");
         e.close();`,
      );
      const r = await syncOrder(dir, script);
      assert.equal(r.appended, 1);
      assert.deepEqual(r.unsynced.slice(0, 2), [], "X committed while its segment was unsynced");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
