import assert from "node:assert/strict";
import fc from "fast-check";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { bytesBody } from "../store/message_input.ts";
import type { ImapMailboxes } from "./backend.ts";
import type { Emitter } from "./selected.ts";
import { changedTargets, scanTargets } from "./scan.ts";
import { UidSet } from "./uid_set.ts";

const enc = new TextEncoder();
const quiet: Emitter = { out() {}, breathe: () => Promise.resolve() };

/** A mailbox with UIDs 1..n of which `gone` were expunged; every fifth message flagged. */
async function mailbox(n: number, gone: number[]) {
  const store = openSqliteStore(":memory:");
  const a = (await store.createAccount({ address: "s@x", passwordHash: "h", now: 1 })).account;
  const inbox = (await store.getMailbox(a.id, "INBOX"))!;
  for (let i = 1; i <= n; i++) {
    await store.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: bytesBody(enc.encode(`Subject: ${i}\r\n\r\nx\r\n`)),
      flags: i % 5 === 0 ? ["\\Flagged"] : [],
      internalDate: i,
      defaultQuotaBytes: 1e9,
    });
  }
  await store.removeMessages(inbox.id, gone);
  return { store, id: inbox.id, mailboxes: store as unknown as ImapMailboxes };
}

Deno.test("scanTargets() yields exactly the stored targets, both ways, whatever the window", async () => {
  const { store, id, mailboxes } = await mailbox(120, [3, 4, 5, 50, 51, 99]);
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 130 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        fc.boolean(),
        async (members, window, desc, flaggedOnly) => {
          const targets = UidSet.of(members);
          const got: number[] = [];
          for await (
            const rows of scanTargets(mailboxes, id, targets, quiet, {
              window,
              direction: desc ? "desc" : "asc",
              filter: flaggedOnly ? { kind: "flag", flag: "\\Flagged", set: true } : undefined,
            })
          ) got.push(...rows.map((m) => m.uid));
          const stored = (u: number) => u <= 120 && ![3, 4, 5, 50, 51, 99].includes(u);
          const want = [...targets.values()].filter((u) =>
            stored(u) && (!flaggedOnly || u % 5 === 0)
          );
          assert.deepEqual(got, desc ? want.reverse() : want);
        },
      ),
      { numRuns: 200 },
    );
    // A fragmented target set (more runs than one step carries) still comes out whole.
    const odd = UidSet.of(Array.from({ length: 60 }, (_, i) => 2 * i + 1));
    const seen: number[] = [];
    for await (const rows of scanTargets(mailboxes, id, odd, quiet, { window: 7 })) {
      seen.push(...rows.map((m) => m.uid));
    }
    assert.deepEqual(seen, [...odd.values()].filter((u) => ![3, 5, 51, 99].includes(u)));
  } finally {
    await store.close();
  }
});

Deno.test("changedTargets() reads few changes through the index and many by a scan", async () => {
  const { store, id, mailboxes } = await mailbox(3000, []);
  try {
    const base = (await store.mailboxState(id))!.highestModSeq;
    await store.setFlags(id, { uids: [7, 2999, 1500], mode: "add", flags: ["\\Seen"] });
    const collect = async (targets: UidSet) => {
      const out: number[] = [];
      for await (const rows of changedTargets(mailboxes, id, targets, base, quiet, 100)) {
        out.push(...rows.map((m) => m.uid));
      }
      return out;
    };
    assert.deepEqual(await collect(UidSet.range(1, 3000)), [7, 1500, 2999]);
    assert.deepEqual(await collect(UidSet.range(1, 2000)), [7, 1500]);
    // 1 200 changes: past the first page, the scan answers in UID order all the same.
    const many = Array.from({ length: 1200 }, (_, i) => 2 * i + 2);
    for (let i = 0; i < many.length; i += 500) {
      await store.setFlags(id, { uids: many.slice(i, i + 500), mode: "add", flags: ["$M"] });
    }
    const got = await collect(UidSet.range(1, 3000));
    assert.deepEqual(got, [...new Set([7, 1500, 2999, ...many])].sort((a, b) => a - b));
  } finally {
    await store.close();
  }
});
