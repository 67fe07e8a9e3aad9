// Issue 22: a mailbox of 250 000 messages over real IMAP. The messages go in straight through the
// store (bulkFill: seconds, not one commit each); then SELECT, UID FETCH 1:* (FLAGS), SEARCH
// RETURN (MIN MAX …), a QRESYNC resync with VANISHED, a mass STORE and a mass EXPUNGE must answer
// exactly what the fill pattern says. Meanwhile another user's session sends NOOP after NOOP:
// its latencies are printed for each command (benchmarks judge them, this test does not).

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { Imap, type ImapResult } from "../scripts/bench/clients.ts";
import { Db } from "../src/store/sqlite/mod.ts";
import { bulkFill } from "../src/store/sqlite/bulk_fill.ts";

const N = 250_000;
const enc = new TextEncoder();
const BASE_DATE = Date.UTC(2025, 0, 1);

/** The fill pattern: what every message's flags are, computed independently of tern. */
function flagsOf(uid: number): string[] {
  const f: string[] = [];
  if (uid % 3 !== 0) f.push("\\Seen");
  if (uid % 1000 === 7) f.push("\\Flagged");
  if (uid % 50_000 === 123) f.push("$Label");
  if (uid === 5) f.push("$Old");
  return f.sort();
}

/** Fails the command (closing the connection) when no answer came within `ms`. */
async function within<T>(c: Imap, ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      c.close();
      reject(new Error(`${what}: no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function connect(t: TestRelay, user: { address: string; password: string }) {
  const c = await Imap.connect(t.addr("imaps").port, t.caPem, 64 * 1024);
  await within(c, 30_000, "LOGIN", c.login(user.address, user.password));
  return c;
}

function cmd(c: Imap, command: string, keep = true): Promise<ImapResult> {
  return within(c, 300_000, command, c.cmd(command, keep));
}

/** Runs `fn` while the bystander sends NOOPs; prints their latencies. */
async function whileBystanding<T>(by: Imap, label: string, fn: () => Promise<T>): Promise<T> {
  const lat: number[] = [];
  let stop = false;
  const pinger = (async () => {
    while (!stop) {
      const t0 = performance.now();
      const r = await cmd(by, "NOOP");
      assert.ok(r.ok, r.status);
      lat.push(performance.now() - t0);
    }
  })();
  const t0 = performance.now();
  let result: T;
  try {
    result = await fn();
  } finally {
    stop = true;
    await pinger;
  }
  const took = performance.now() - t0;
  lat.sort((a, b) => a - b);
  const p99 = lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] ?? 0;
  console.log(
    `${label}: ${took.toFixed(0)} ms; bystander NOOP ×${lat.length}, p99 ${p99.toFixed(1)} ms, ` +
      `worst ${(lat[lat.length - 1] ?? 0).toFixed(1)} ms`,
  );
  return result;
}

const value = (r: ImapResult, re: RegExp) => {
  for (const l of r.untagged) {
    const m = re.exec(l);
    if (m) return m[1];
  }
  return undefined;
};

Deno.test({
  name: "IMAP on 250 000 messages: SELECT, FETCH 1:*, SEARCH, QRESYNC, mass STORE and EXPUNGE",
  sanitizeResources: false, // the bench client's TLS connections close without a final read
  async fn() {
    await withRelay(async (t) => {
      const user = await createAccount(t, "bigmail01");
      const other = await createAccount(t, "bystand01");
      const store = t.relay.services.store;
      const account = (await store.getAccount(user.address))!;
      const inbox = (await store.getMailbox(account.id, "INBOX"))!;
      const db = new Db(t.relay.services.sqlite!.db.path);
      const t0 = performance.now();
      try {
        bulkFill(db, inbox.id, N, (i) => {
          const uid = i + 1;
          return {
            data: enc.encode(`Subject: m${uid}\r\n\r\nbody ${uid}\r\n`),
            flags: flagsOf(uid),
            internalDate: BASE_DATE + uid * 1000,
          };
        });
        // $Old is taken off its only message: FLAGS must still list it.
        await store.setFlags(inbox.id, { uids: [5], mode: "remove", flags: ["$Old"] });
      } finally {
        db.close();
      }
      console.log(`fill: ${N} messages in ${(performance.now() - t0).toFixed(0)} ms`);
      const filled = (await store.getMailbox(account.id, "INBOX"))!;

      const by = await connect(t, other);
      const big = await connect(t, user);
      const writer = await connect(t, user);
      try {
        assert.ok((await cmd(by, "SELECT INBOX")).ok);

        // SELECT: counts, first unseen, keywords, without reading the messages.
        const sel = await whileBystanding(by, "SELECT", () => cmd(big, "SELECT INBOX"));
        assert.ok(sel.ok, sel.status);
        assert.ok(sel.untagged.includes(`* ${N} EXISTS`), sel.untagged.join("|"));
        assert.ok(sel.untagged.includes("* 0 RECENT"));
        assert.equal(value(sel, /^\* OK \[UNSEEN (\d+)\]/), "3");
        assert.equal(value(sel, /^\* OK \[UIDNEXT (\d+)\]/), String(N + 1));
        assert.equal(value(sel, /^\* OK \[HIGHESTMODSEQ (\d+)\]/), String(filled.highestModSeq));
        assert.equal(
          sel.untagged.find((l) => l.startsWith("* FLAGS")),
          "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Old $Label)",
        );

        // UID FETCH 1:* (FLAGS): every message, flags as the pattern says.
        const all = await whileBystanding(
          by,
          "UID FETCH 1:* (FLAGS)",
          () => cmd(big, "UID FETCH 1:* (FLAGS)"),
        );
        assert.ok(all.ok, all.status);
        assert.equal(all.untagged.length, N);
        for (let i = 0; i < N; i++) {
          const uid = i + 1;
          const m = /^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$/.exec(all.untagged[i]);
          assert.ok(m, all.untagged[i]);
          assert.equal(Number(m[1]), uid);
          assert.equal(Number(m[2]), uid);
          const got = m[3] === "" ? [] : m[3].split(" ").sort();
          assert.deepEqual(got, flagsOf(uid).filter((f) => f !== "$Old"), all.untagged[i]);
        }

        // SEARCH in SQL, paged; MIN/MAX stop at the first match from each end.
        const esearch = async (args: string) => {
          const r = await whileBystanding(by, `SEARCH ${args}`, () => cmd(big, `SEARCH ${args}`));
          assert.ok(r.ok, r.status);
          return r.untagged[0].replace(/^\* ESEARCH \(TAG "b\d+"\)( UID)?/, "").trim();
        };
        assert.equal(await esearch("RETURN (MIN MAX) FLAGGED"), "MIN 7 MAX 249007");
        assert.equal(await esearch("RETURN (MIN MAX) ALL"), `MIN 1 MAX ${N}`);
        assert.equal(await esearch("RETURN (COUNT) UNSEEN"), `COUNT ${Math.floor(N / 3)}`);
        assert.equal(
          await esearch("RETURN (MIN MAX COUNT) KEYWORD $Label"),
          "MIN 123 MAX 200123 COUNT 5",
        );
        assert.equal(
          await esearch(`RETURN (COUNT) SINCE 2-Jan-2025 NOT SEEN`),
          `COUNT ${Math.floor(N / 3) - Math.floor(86_399 / 3)}`,
        );

        // QRESYNC: a client that knew the mailbox at `modseq` comes back after 100 flag
        // changes and 1000 expunges made by another session.
        assert.ok((await cmd(big, "ENABLE QRESYNC")).ok);
        const uidValidity = value(sel, /^\* OK \[UIDVALIDITY (\d+)\]/);
        const modseq = filled.highestModSeq;
        assert.ok((await cmd(big, "UNSELECT")).ok);
        assert.ok((await cmd(writer, "SELECT INBOX")).ok);
        assert.ok((await cmd(writer, "UID STORE 100:199 +FLAGS.SILENT (\\Answered)")).ok);
        assert.ok((await cmd(writer, "UID STORE 1000:1999 +FLAGS.SILENT (\\Deleted)")).ok);
        const ex = await cmd(writer, "UID EXPUNGE 1000:1999");
        assert.equal(ex.untagged.length, 1000);
        const re = await whileBystanding(
          by,
          "SELECT (QRESYNC)",
          () => cmd(big, `SELECT INBOX (QRESYNC (${uidValidity} ${modseq}))`),
        );
        assert.ok(re.ok, re.status);
        assert.ok(re.untagged.includes("* VANISHED (EARLIER) 1000:1999"), re.untagged[0]);
        assert.ok(re.untagged.includes(`* ${N - 1000} EXISTS`));
        const changed = re.untagged.filter((l) => / FETCH \(UID \d+ FLAGS/.test(l));
        assert.equal(changed.length, 100);
        for (const l of changed) {
          const uid = Number(/UID (\d+)/.exec(l)![1]);
          assert.ok(uid >= 100 && uid <= 199 && l.includes("\\Answered"), l);
        }
        const before = value(await cmd(big, "NOOP"), /HIGHESTMODSEQ (\d+)/) ??
          String((await store.getMailbox(account.id, "INBOX"))!.highestModSeq);
        assert.ok((await cmd(writer, "UID STORE 300:309 +FLAGS.SILENT (\\Flagged)")).ok);
        const since = await whileBystanding(
          by,
          "UID FETCH CHANGEDSINCE (10 changes)",
          () => cmd(big, `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${before} VANISHED)`),
        );
        assert.deepEqual(
          since.untagged.filter((l) => l.includes("FETCH")).map((l) => /UID (\d+)/.exec(l)![1]),
          ["300", "301", "302", "303", "304", "305", "306", "307", "308", "309"],
        );

        // Mass STORE and EXPUNGE of everything left, from the other session.
        const stored = await whileBystanding(
          by,
          "STORE 1:* +FLAGS.SILENT (\\Deleted)",
          () => cmd(writer, "STORE 1:* +FLAGS.SILENT (\\Deleted)"),
        );
        assert.ok(stored.ok, stored.status);
        assert.equal(await esearch("RETURN (COUNT) DELETED"), `COUNT ${N - 1000}`);
        const gone = await whileBystanding(by, "EXPUNGE", () => cmd(writer, "EXPUNGE"));
        assert.ok(gone.ok, gone.status);
        assert.equal(gone.untagged.length, N - 1000);
        // Highest first: each number is valid when the client applies it.
        assert.equal(gone.untagged[0], `* ${N - 1000} EXPUNGE`);
        assert.equal(gone.untagged[gone.untagged.length - 1], "* 1 EXPUNGE");
        const told = await whileBystanding(
          by,
          "NOOP after the mass EXPUNGE (VANISHED)",
          () => cmd(big, "NOOP"),
        );
        assert.deepEqual(told.untagged, [`* VANISHED 1:999,2000:${N}`]);
        const status = await cmd(by, "STATUS INBOX (MESSAGES)");
        assert.ok(status.ok);
        assert.equal(value(await cmd(big, "STATUS INBOX (MESSAGES)"), /MESSAGES (\d+)/), "0");
      } finally {
        for (const c of [by, big, writer]) c.close();
      }
    });
  },
});
