// Contract for MailboxQueries (the bounded reads IMAP uses at scale): every Store implementation
// runs it. The filter semantics are checked against `matchesFilter`, the reference evaluator.

import assert from "node:assert/strict";
import fc from "fast-check";
import type { MessageFilter, MessageRecord, Store } from "./types.ts";
import { bytesBody } from "./message_input.ts";
import { isRelayError } from "../errors.ts";

const enc = new TextEncoder();

/** What a MessageFilter means, in plain code: the store's evaluation must agree. */
export function matchesFilter(f: MessageFilter, m: MessageRecord): boolean {
  switch (f.kind) {
    case "true":
      return true;
    case "false":
      return false;
    case "uids":
      return f.ranges.some(([lo, hi]) => m.uid >= lo && m.uid <= hi);
    case "flag":
      return m.flags.some((x) => x.toLowerCase() === f.flag.toLowerCase()) === f.set;
    case "compare": {
      const v = f.field === "internalDate"
        ? m.internalDate
        : f.field === "size"
        ? m.size
        : m.modSeq;
      switch (f.op) {
        case "<":
          return v < f.value;
        case "<=":
          return v <= f.value;
        case ">":
          return v > f.value;
        case ">=":
          return v >= f.value;
      }
      return false;
    }
    case "not":
      return !matchesFilter(f.filter, m);
    case "and":
      return f.filters.every((x) => matchesFilter(x, m));
    case "or":
      return f.filters.some((x) => matchesFilter(x, m));
  }
}

async function mailbox(s: Store) {
  const a = (await s.createAccount({ address: "q@x", passwordHash: "h", now: 1 })).account;
  const inbox = (await s.getMailbox(a.id, "INBOX"))!;
  const append = (i: number, flags: string[] = []) =>
    s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: bytesBody(enc.encode(`Subject: ${i}\r\n\r\n${"x".repeat(i % 7)}\r\n`)),
      flags,
      internalDate: 1_000_000 + i * 1000,
      defaultQuotaBytes: 1e9,
    });
  return { account: a, inbox, append };
}

/** Every message of a mailbox through the paged queries, for checking. */
async function allMessages(s: Store, mailboxId: number): Promise<MessageRecord[]> {
  const out: MessageRecord[] = [];
  let from = 0;
  while (true) {
    const r = await s.scanMessages(mailboxId, { from, direction: "asc", window: 3 });
    out.push(...r.rows);
    if (r.done) return out;
    from = r.next;
  }
}

export function runQueriesContract(name: string, makeStore: () => Store | Promise<Store>): void {
  const test = (title: string, fn: (s: Store) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const s = await makeStore();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  test("listUids() pages UIDs as runs, with gaps where messages were expunged", async (s) => {
    const { account, inbox, append } = await mailbox(s);
    for (let i = 1; i <= 10; i++) await append(i);
    await s.removeMessages(inbox.id, [3, 4, 7]);
    const runs: number[] = [];
    let after = 0;
    let pages = 0;
    while (true) {
      const p = await s.listUids(inbox.id, { afterUid: after, limit: 3 });
      pages++;
      runs.push(...p.runs);
      if (p.done) break;
      assert.equal(p.count, 3);
      after = p.lastUid;
    }
    const uids: number[] = [];
    for (let i = 0; i < runs.length; i += 2) {
      for (let u = runs[i]; u <= runs[i + 1]; u++) uids.push(u);
    }
    assert.deepEqual(uids, [1, 2, 5, 6, 8, 9, 10]);
    assert.equal(pages, 3);
    const below = await s.listUids(inbox.id, { afterUid: 0, belowUid: 6, limit: 100 });
    assert.deepEqual(below, { runs: [1, 2, 5, 5], count: 3, lastUid: 5, done: true });
    const empty = await s.listUids(inbox.id, { afterUid: 10, limit: 5 });
    assert.deepEqual(empty, { runs: [], count: 0, lastUid: 10, done: true });
    assert.equal(account.id > 0, true);
  });

  test("firstUnseenUid() and listKeywords() answer from indexes", async (s) => {
    const { account, inbox, append } = await mailbox(s);
    await append(1, ["\\Seen", "$Foo"]);
    await append(2, ["$bar"]);
    await append(3, ["\\Seen"]);
    assert.equal(await s.firstUnseenUid(inbox.id), 2);
    assert.equal(await s.firstUnseenUid(inbox.id, 2), null);
    await s.setFlags(inbox.id, { uids: [2], mode: "add", flags: ["\\Seen", "$BAR", "Later"] });
    assert.equal(await s.firstUnseenUid(inbox.id), null);
    // Defined once, first spelling kept, and still listed when no message carries it.
    await s.setFlags(inbox.id, { uids: [1, 2], mode: "replace", flags: [] });
    assert.deepEqual(await s.listKeywords(inbox.id), ["$Foo", "$bar", "Later"]);
    const other = await s.createMailbox(account.id, "Other");
    assert.deepEqual(await s.listKeywords(other.id), []);
    await s.setFlags(inbox.id, { uids: [3], mode: "add", flags: ["$Copied"] });
    await s.copyMessages(inbox.id, [3], other.id);
    assert.deepEqual(await s.listKeywords(other.id), ["$Copied"]);
  });

  test("a mailbox defines at most 1 000 keywords; beyond, the write fails whole", async (s) => {
    const { inbox, append } = await mailbox(s);
    await append(1);
    const many = Array.from({ length: 999 }, (_, i) => `k${i}`);
    await s.setFlags(inbox.id, { uids: [1], mode: "add", flags: many });
    // The 1 000th is new; K5 is k5 (the first spelling stays, one flag on the message).
    await s.setFlags(inbox.id, { uids: [1], mode: "add", flags: ["K5", "last"] });
    const [m] = await s.getMessages(inbox.id, [1]);
    assert.equal(m.flags.length, 1000);
    assert.ok(m.flags.includes("k5") && !m.flags.includes("K5"));
    const full = (err: unknown) => isRelayError(err, "invalid_argument");
    await assert.rejects(
      s.setFlags(inbox.id, { uids: [1], mode: "add", flags: ["\\Seen", "one-more"] }),
      full,
    );
    await assert.rejects(append(2, ["another"]), full);
    assert.equal((await s.getMessages(inbox.id, [1]))[0].modSeq, m.modSeq, "nothing changed");
    assert.equal((await s.getMailboxById(inbox.id))!.messages, 1);
    const words = await s.listKeywords(inbox.id);
    assert.equal(words.length, 1000);
    assert.deepEqual(words.slice(-2), ["k998", "last"]);
    // Known keywords (in any case) and system flags still go on messages.
    const { uid } = await append(3, ["K1", "\\Flagged"]);
    assert.equal(uid, 2, "the refused append took no UID");
    assert.deepEqual((await s.getMessages(inbox.id, [uid]))[0].flags, ["\\Flagged", "k1"]);
  });

  test("copies and moves take the destination's spelling of a keyword", async (s) => {
    const { account, inbox, append } = await mailbox(s);
    await append(1, ["$Foo", "\\Seen", "$bar"]);
    await append(2, ["$zed"]);
    const other = await s.createMailbox(account.id, "Other");
    await s.append({
      accountId: account.id,
      mailboxName: "Other",
      body: bytesBody(enc.encode("Subject: o\r\n\r\n")),
      flags: ["$FOO"],
      internalDate: 1,
      defaultQuotaBytes: 1e9,
    });
    const copied = await s.copyMessages(inbox.id, [1, 2], other.id);
    const moved = await s.moveMessages(inbox.id, [1], other.id);
    const got = await s.getMessages(
      other.id,
      [...copied.mapping, ...moved.mapping].map((x) => x[1]),
    );
    assert.deepEqual(got.map((m) => m.flags), [
      ["$FOO", "$bar", "\\Seen"],
      ["$zed"],
      ["$FOO", "$bar", "\\Seen"],
    ]);
    assert.equal((await s.getMailboxById(other.id))!.unseen, 2);
    assert.deepEqual(await s.listKeywords(other.id), ["$FOO", "$bar", "$zed"]);
  });

  test("scanMessages() walks windows both ways, filters and counts", async (s) => {
    const { inbox, append } = await mailbox(s);
    for (let i = 1; i <= 9; i++) await append(i, i % 3 === 0 ? ["\\Flagged"] : []);
    await s.removeMessages(inbox.id, [5]);
    const flagged: MessageFilter = { kind: "flag", flag: "\\flagged", set: true };
    const seen: number[] = [];
    let from = 0;
    let steps = 0;
    while (true) {
      const r = await s.scanMessages(inbox.id, {
        from,
        direction: "asc",
        window: 2,
        filter: flagged,
      });
      steps++;
      seen.push(...r.rows.map((m) => m.uid));
      if (r.done) break;
      from = r.next;
    }
    assert.deepEqual(seen, [3, 6, 9]);
    assert.equal(steps, 5, "four full windows, then an empty one that says done");
    const down: number[] = [];
    from = 100;
    while (true) {
      const r = await s.scanMessages(inbox.id, {
        from,
        direction: "desc",
        window: 3,
        maxUid: 8,
      });
      down.push(...r.rows.map((m) => m.uid));
      if (r.done) break;
      from = r.next;
    }
    assert.deepEqual(down, [8, 7, 6, 4, 3, 2, 1]);
    const counted = await s.scanMessages(inbox.id, {
      from: 0,
      direction: "asc",
      window: 100,
      filter: { kind: "not", filter: flagged },
      countOnly: true,
    });
    assert.deepEqual(counted, { rows: [], count: 5, next: 9, done: true });
  });

  test("changedMessages() and expungedMessages() page in (modseq, uid) order", async (s) => {
    const { inbox, append } = await mailbox(s);
    for (let i = 1; i <= 7; i++) await append(i);
    const base = (await s.getMailboxById(inbox.id))!.highestModSeq;
    // Changes after a modseq exclude the messages of that modseq (the last append's here).
    const newest = await s.changedMessages(inbox.id, {
      sinceModSeq: base - 1,
      upToModSeq: base,
      limit: 10,
    });
    assert.deepEqual(newest.map((m) => m.uid), [7]);
    assert.deepEqual(
      await s.changedMessages(inbox.id, { sinceModSeq: base, upToModSeq: base + 5, limit: 10 }),
      [],
    );
    // One STORE gives five messages the same modseq: pages must split it by UID.
    await s.setFlags(inbox.id, { uids: [1, 2, 3, 4, 5], mode: "add", flags: ["\\Seen"] });
    await s.setFlags(inbox.id, { uids: [2], mode: "add", flags: ["\\Flagged"] });
    await s.setFlags(inbox.id, { uids: [6, 7], mode: "add", flags: ["\\Deleted"] });
    await s.expunge(inbox.id);
    const top = (await s.getMailboxById(inbox.id))!.highestModSeq;
    const got: string[] = [];
    let after: { modSeq: number; uid: number } | undefined;
    while (true) {
      const page = await s.changedMessages(inbox.id, {
        sinceModSeq: base,
        upToModSeq: top,
        after,
        limit: 2,
      });
      for (const m of page) got.push(`${m.uid}@${m.modSeq - base}`);
      if (page.length < 2) break;
      after = { modSeq: page[1].modSeq, uid: page[1].uid };
    }
    assert.deepEqual(got, ["1@1", "3@1", "4@1", "5@1", "2@2"]);
    const limited = await s.changedMessages(inbox.id, {
      sinceModSeq: base,
      upToModSeq: base + 1,
      maxUid: 3,
      limit: 10,
    });
    assert.deepEqual(limited.map((m) => m.uid), [1, 3]);
    const gone = await s.expungedMessages(inbox.id, {
      sinceModSeq: base,
      upToModSeq: top,
      limit: 1,
    });
    assert.equal(gone.length, 1);
    assert.equal(gone[0].uid, 6);
    const rest = await s.expungedMessages(inbox.id, {
      sinceModSeq: base,
      upToModSeq: top,
      after: { modSeq: gone[0].modSeq, uid: 6 },
      limit: 10,
    });
    assert.deepEqual(rest.map((r) => r.uid), [7]);
    // The tombstone keeps what the message was.
    const [t] = await s.expungedInRange(inbox.id, 7, 7, 10);
    assert.deepEqual(t.flags, ["\\Deleted"]);
    assert.equal(t.internalDate, 1_000_000 + 7 * 1000);
    assert.ok(t.size! > 0);
    assert.deepEqual((await s.expungedInRange(inbox.id, 1, 100, 10)).map((r) => r.uid), [6, 7]);
  });

  test("claimRecent() hands out \\Recent as one range, moved past copies too", async (s) => {
    const { account, inbox, append } = await mailbox(s);
    for (let i = 1; i <= 3; i++) await append(i);
    assert.deepEqual(await s.claimRecent(inbox.id), [1, 3]);
    await append(4);
    const other = await s.createMailbox(account.id, "Other");
    await s.copyMessages(inbox.id, [1, 2], other.id);
    assert.deepEqual(await s.claimRecent(inbox.id), [4, 4]);
    assert.equal((await s.getMailboxById(other.id))!.recent, 2);
    assert.deepEqual(await s.claimRecent(other.id), [1, 2]);
    assert.equal((await s.getMailboxById(other.id))!.recent, 0);
  });

  test("scanMessages() takes filters of thousands of terms (a SEARCH of many keys)", async (s) => {
    const { inbox, append } = await mailbox(s);
    for (let i = 1; i <= 6; i++) await append(i, i % 2 ? ["\\Flagged"] : []);
    const flagged: MessageFilter = { kind: "flag", flag: "\\Flagged", set: true };
    const either: MessageFilter = {
      kind: "or",
      filters: [flagged, { kind: "not", filter: flagged }],
    };
    // 3 000 keys ANDed (SQLite allows an expression 1 000 deep: a chain of them was refused),
    // an OR of as many, and a UID set of 3 000 ranges.
    const filters: MessageFilter[] = [
      { kind: "and", filters: Array.from({ length: 3000 }, () => either) },
      { kind: "or", filters: Array.from({ length: 3000 }, () => flagged) },
      { kind: "uids", ranges: Array.from({ length: 3000 }, (_, i) => [2 * i + 1, 2 * i + 1]) },
    ];
    const want = [[1, 2, 3, 4, 5, 6], [1, 3, 5], [1, 3, 5]];
    for (const [i, filter] of filters.entries()) {
      const r = await s.scanMessages(inbox.id, { from: 0, direction: "asc", window: 100, filter });
      assert.deepEqual(r.rows.map((m) => m.uid), want[i]);
    }
  });

  test("scanMessages() filters agree with the reference evaluator", async (s) => {
    const { inbox, append } = await mailbox(s);
    const pool = ["\\Seen", "\\Flagged", "\\Deleted", "$Foo", "a_b", "50%", "x!y"];
    for (let i = 1; i <= 24; i++) {
      await append(i, pool.filter((_, k) => ((i * 7 + k * 3) % 5) < 2));
    }
    await s.removeMessages(inbox.id, [4, 11]);
    const all = await allMessages(s, inbox.id);
    const leaf: fc.Arbitrary<MessageFilter> = fc.oneof(
      fc.constantFrom<MessageFilter>({ kind: "true" }, { kind: "false" }),
      fc.record({
        kind: fc.constant("flag" as const),
        flag: fc.constantFrom(...pool, "\\SEEN", "$foo", "A_B", "ab", "5"),
        set: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant("compare" as const),
        field: fc.constantFrom("internalDate" as const, "size" as const, "modSeq" as const),
        op: fc.constantFrom("<" as const, "<=" as const, ">" as const, ">=" as const),
        value: fc.oneof(
          fc.integer({ min: 0, max: 40 }),
          fc.integer({ min: 1_000_000, max: 1_030_000 }),
        ),
      }),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 26 }), fc.integer({ min: 0, max: 5 })), {
        maxLength: 3,
      }).map((xs): MessageFilter => ({
        kind: "uids",
        ranges: xs.map(([a, n]) => [a, a + n] as const),
      })),
    );
    const { tree } = fc.letrec<{ tree: MessageFilter }>((rec) => ({
      tree: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        leaf,
        rec("tree").map((f): MessageFilter => ({ kind: "not", filter: f })),
        fc.record({
          kind: fc.constantFrom("and" as const, "or" as const),
          filters: fc.array(rec("tree"), { maxLength: 3 }),
        }),
      ),
    }));
    await fc.assert(
      fc.asyncProperty(tree, fc.integer({ min: 1, max: 30 }), async (filter, window) => {
        const got: number[] = [];
        const ids: number[] = [];
        let from = 0;
        while (true) {
          const r = await s.scanMessages(inbox.id, { from, direction: "asc", window, filter });
          got.push(...r.rows.map((m) => m.uid));
          const only = await s.scanMessages(inbox.id, {
            from,
            direction: "asc",
            window,
            filter,
            uidsOnly: true,
          });
          assert.deepEqual(only.rows, []);
          ids.push(...only.uids!);
          assert.deepEqual(only.modSeqs, r.rows.map((m) => m.modSeq));
          if (r.done) break;
          from = r.next;
        }
        const want = all.filter((m) => matchesFilter(filter, m)).map((m) => m.uid);
        assert.deepEqual(got, want);
        assert.deepEqual(ids, want);
      }),
      { numRuns: 300 },
    );
  });
}
