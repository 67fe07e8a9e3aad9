// A body file removed or cut short under a running relay (an operator's rm, a file system that
// lost a file's tail): a FETCH serves every intact message and ends NO [SERVERBUG] for the
// damaged ones, never an OK that silently leaves a message out, never a cut literal; the session
// and others go on. tern doctor names the damaged files.

import assert from "node:assert/strict";
import { createAccount, NO_DNS, withRelay } from "./support/relay.ts";
import { runDoctor } from "../src/app/doctor.ts";
import { createLogger } from "../src/log/mod.ts";
import { WireClient } from "./support/wire_client.ts";

const enc = new TextEncoder();

function message(n: number, seed: number): string {
  let body = "";
  for (let i = 0; body.length < n; i++) body += `line ${seed} ${i} ${"z".repeat(60)}\r\n`;
  return `From: <alice0001@x.test>\r\nSubject: m${seed}\r\n\r\n${body}`;
}

Deno.test("FETCH of messages whose body files were removed or cut: NO for them, the rest served", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const port = t.addr("imaps").port;
    const c = await WireClient.connect(port, { tlsCa: t.caPem });
    await c.line();
    assert.match((await c.cmd("l", `LOGIN ${a.address} ${a.password}`)).status, /^OK/);
    // Inline, mid-sized (a shared segment), large (files of their own); the last one intact.
    const sizes = [1_000, 64_000, 300_000, 300_000, 64_000, 300_000];
    const sent = sizes.map((n, i) => message(n, i));
    for (const [i, m] of sent.entries()) {
      await c.write(`a${i} APPEND INBOX {${enc.encode(m).length}+}\r\n${m}\r\n`);
      assert.match((await c.response(`a${i}`)).status, /^OK/);
    }
    const store = t.relay.services.store;
    const account = (await store.getAccount(a.address))!;
    const inbox = (await store.getMailbox(account.id, "INBOX"))!;
    const records = await store.listMessages(inbox.id);
    const bodies = `${t.dir}/data/bodies`;
    const names: string[] = [];
    for await (const e of Deno.readDir(bodies)) {
      if (e.isFile && /^[0-9a-f]{32}$/.test(e.name)) names.push(e.name);
    }
    const sizeOf = async (n: string) => (await Deno.stat(`${bodies}/${n}`)).size;
    const large: string[] = [];
    let segment = "";
    for (const n of names) {
      if ((await sizeOf(n)) >= 300_000) large.push(n);
      else segment = n;
    }
    assert.equal(large.length, 3);
    assert.ok(segment, "the mid-sized bodies share a segment");
    // Which large file is whose: by content.
    const whose = async (n: string) => {
      const text = new TextDecoder().decode(await Deno.readFile(`${bodies}/${n}`));
      return sent.findIndex((m) => text.endsWith(m.slice(-200)));
    };
    const byIndex = new Map<number, string>();
    for (const n of large) byIndex.set(await whose(n), n);
    const doctor = async () =>
      (await runDoctor(t.relay.config, { dns: NO_DNS })).find((c) => c.name === "body files")!;
    const healthy = await doctor();
    assert.equal(healthy.level, "OK", healthy.detail);
    assert.match(healthy.detail, /^4 body files, all whole$/);
    await Deno.remove(`${bodies}/${byIndex.get(2)}`);
    await Deno.truncate(`${bodies}/${byIndex.get(3)}`, 100_000);
    // The segment keeps its first body whole and loses the second's tail.
    await Deno.truncate(`${bodies}/${segment}`, enc.encode(sent[1]).length + 100);

    const damaged = await doctor();
    assert.equal(damaged.level, "FAIL");
    assert.match(damaged.detail, new RegExp(`${byIndex.get(2)} is missing \\(1 message\\)`));
    assert.match(
      damaged.detail,
      new RegExp(`${byIndex.get(3)} is cut short \\(100000 of \\d+ bytes, 1 message\\)`),
    );
    assert.match(
      damaged.detail,
      new RegExp(`${segment} is cut short \\(\\d+ of \\d+ bytes, 2 messages\\)`),
    );
    assert.match(damaged.detail, /^3 of 4 body files are damaged: /);

    assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
    const all = await c.cmd("f", "FETCH 1:* (UID BODY.PEEK[])", 30_000, true);
    const served = all.untagged.filter((l) => l.includes("FETCH")).map((l) =>
      Number(/UID (\d+)/.exec(l)![1])
    );
    assert.deepEqual(served, [records[0].uid, records[1].uid, records[5].uid]);
    for (const i of [0, 1, 5]) {
      const line = all.untagged.find((l) => l.includes(`UID ${records[i].uid} `))!;
      assert.ok(line.includes(sent[i]), `message ${i} is served whole`);
    }
    assert.match(all.status, /^NO \[SERVERBUG\] /, "the damaged ones are not an OK");
    // Each damaged message alone: a clean NO, and the connection stays.
    for (const i of [2, 3, 4]) {
      const r = await c.cmd(`u${i}`, `UID FETCH ${records[i].uid} (BODY.PEEK[])`);
      assert.deepEqual(r.untagged, [], `message ${i}`);
      assert.match(r.status, /^NO \[SERVERBUG\] /, `message ${i}`);
    }
    assert.match((await c.cmd("n", "NOOP")).status, /^OK/);
    // Another session is served too.
    const other = await WireClient.connect(port, { tlsCa: t.caPem });
    await other.line();
    await other.cmd("l", `LOGIN ${a.address} ${a.password}`);
    await other.cmd("s", "EXAMINE INBOX");
    const one = await other.cmd("f", "FETCH 1 BODY.PEEK[]", 30_000, true);
    assert.match(one.status, /^OK/);
    assert.ok(one.untagged[0].includes(sent[0]));
    other.close();
    c.close();
  });
});

/** A relay's error log lines, parsed. */
function errorLog() {
  const errors: Record<string, unknown>[] = [];
  const log = createLogger("info", {
    write: (l) => {
      const rec = JSON.parse(l);
      if (rec.level === "error") errors.push(rec);
    },
  });
  return { errors, log };
}

Deno.test("SEARCH BODY/TEXT over a message whose body file was removed: the readable ones are searched and answered, then NO", async () => {
  const { errors, log } = errorLog();
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const c = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
    await c.line();
    assert.match((await c.cmd("l", `LOGIN ${a.address} ${a.password}`)).status, /^OK/);
    // Large bodies, each in a file of its own; the second one's file goes.
    const sent = [0, 1, 2].map((i) => message(300_000, i));
    for (const [i, m] of sent.entries()) {
      await c.write(`a${i} APPEND INBOX {${enc.encode(m).length}+}\r\n${m}\r\n`);
      assert.match((await c.response(`a${i}`)).status, /^OK/);
    }
    const bodies = `${t.dir}/data/bodies`;
    let removed = false;
    for await (const e of Deno.readDir(bodies)) {
      if (!e.isFile || !/^[0-9a-f]{32}$/.test(e.name)) continue;
      const text = new TextDecoder().decode(await Deno.readFile(`${bodies}/${e.name}`));
      if (text.endsWith(sent[1].slice(-200))) {
        await Deno.remove(`${bodies}/${e.name}`);
        removed = true;
      }
    }
    assert.ok(removed);
    assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
    const unreadable = /^NO \[SERVERBUG\] Internal error: 1 message could not be read$/;

    // Before: an empty "* SEARCH" and NO, the readable messages not searched at all.
    const all = await c.cmd("b1", "SEARCH BODY zzzz");
    assert.deepEqual(all.untagged, ["* SEARCH 1 3"]);
    assert.match(all.status, unreadable);
    const text = await c.cmd("b2", 'SEARCH TEXT "line 2 0 z"');
    assert.deepEqual(text.untagged, ["* SEARCH 3"]);
    assert.match(text.status, unreadable);
    // Found only in the unreadable message: no match, and never an OK.
    const none = await c.cmd("b3", 'SEARCH BODY "line 1 0 z"');
    assert.deepEqual(none.untagged, ["* SEARCH"]);
    assert.match(none.status, unreadable);
    // MIN past the unreadable message: that one might have been the lowest.
    const min = await c.cmd("b4", 'SEARCH RETURN (MIN) BODY "line 2 0 z"');
    assert.deepEqual(min.untagged, ['* ESEARCH (TAG "b4") MIN 3']);
    assert.match(min.status, unreadable);
    // MIN before it: the answer is whole, an OK.
    const first = await c.cmd("b5", "SEARCH RETURN (MIN) BODY zzzz");
    assert.deepEqual(first.untagged, ['* ESEARCH (TAG "b5") MIN 1']);
    assert.match(first.status, /^OK/);
    // A SAVE that ended NO leaves $ empty.
    const saved = await c.cmd("b6", "SEARCH RETURN (SAVE) BODY zzzz");
    assert.deepEqual(saved.untagged, []);
    assert.match(saved.status, unreadable);
    const fetched = await c.cmd("b7", "FETCH $ (UID)");
    assert.deepEqual(fetched.untagged, []);
    assert.match(fetched.status, /^OK/);
    // Keys that need no body are answered whole.
    const flags = await c.cmd("b8", "SEARCH UNSEEN");
    assert.deepEqual(flags.untagged, ["* SEARCH 1 2 3"]);
    assert.match(flags.status, /^OK/);
    // One error line per command that met the message, naming it.
    assert.equal(errors.length, 5, JSON.stringify(errors));
    assert.ok(
      errors.every((e) => e.msg === "search: stored bodies cannot be read" && e.messages === 1),
    );
    assert.match(String(errors[0].error), /Cannot read body \d+: its file [0-9a-f]{32} is missing/);
    c.close();
  }, { relay: { log } });
});

Deno.test("FETCH of many messages from a store that fails: one error line with the count, not one per message", async () => {
  const { errors, log } = errorLog();
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const account = (await t.relay.services.store.getAccount(a.address))!;
    const mailboxes = t.relay.services.mailboxes;
    for (let i = 0; i < 120; i++) {
      await mailboxes.append({
        accountId: account.id,
        mailboxName: "INBOX",
        data: enc.encode(`Subject: ${i}\r\n\r\nbody ${i}\r\n`),
        flags: [],
        internalDate: Date.UTC(2026, 0, 1),
      });
    }
    const c = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
    await c.line();
    assert.match((await c.cmd("l", `LOGIN ${a.address} ${a.password}`)).status, /^OK/);
    assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
    const failing = () => Promise.reject(new Error("disk I/O error"));
    mailboxes.readSmallBodies = failing;
    mailboxes.openBody = failing;
    const f = await c.cmd("f", "FETCH 1:* (BODY.PEEK[])");
    assert.deepEqual(f.untagged, []);
    assert.match(f.status, /^NO \[SERVERBUG\] Internal error: 120 messages could not be read$/);
    assert.equal(errors.length, 1, `${errors.length} error lines`);
    assert.equal(errors[0].msg, "fetch: stored bodies cannot be read");
    assert.equal(errors[0].messages, 120);
    assert.match(String(errors[0].error), /disk I\/O error/);
    const s = await c.cmd("t", "SEARCH BODY nothing");
    assert.deepEqual(s.untagged, ["* SEARCH"]);
    assert.match(s.status, /^NO \[SERVERBUG\] Internal error: 120 messages could not be read$/);
    assert.equal(errors.length, 2, `${errors.length} error lines`);
    assert.equal(errors[1].messages, 120);
    assert.match((await c.cmd("n", "NOOP")).status, /^OK/);
    c.close();
  }, { relay: { log } });
});
