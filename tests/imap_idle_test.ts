// IMAP IDLE across hibernation: a session in IDLE keeps no suspended frame of its command loop
// (session.ts #hibernate); woken by a change, its keep-alive or the client's line, it goes on
// exactly as before: sequence numbers stay right through expunges and new mail, DONE in pieces
// or followed by a command, a bad line, and a client that goes away mid-IDLE.

import assert from "node:assert/strict";
import { writeHeapSnapshot } from "node:v8";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { imapLogin, startTern } from "./support/tern_process.ts";
import type { WireClient } from "./support/wire_client.ts";

const enc = new TextEncoder();

async function session(t: TestRelay, user: { address: string; password: string }) {
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
  const r = await client.login(user.address, user.password);
  assert.ok(r.ok, r.status);
  return client;
}

function message(n: number): string {
  return `From: a@example.org\r\nTo: b@example.org\r\nSubject: m${n}\r\n` +
    `Message-ID: <m${n}@example.org>\r\n\r\nbody ${n}\r\n`;
}

async function append(t: TestRelay, address: string, n: number) {
  const account = (await t.relay.services.store.getAccount(address))!;
  return await t.relay.services.mailboxes.append({
    accountId: account.id,
    mailboxName: "INBOX",
    data: enc.encode(message(n)),
    flags: [],
  });
}

/** The next response that is not a RECENT count or a keep-alive. */
async function next(c: ImapTestClient): Promise<string> {
  while (true) {
    const r = await c.readResponse();
    if (!/^\* \d+ RECENT$/.test(r) && r !== "* OK Still here") return r;
  }
}

async function idle(c: ImapTestClient): Promise<string> {
  const tag = c.nextTag();
  await c.send(`${tag} IDLE\r\n`);
  assert.match(await c.readResponse(), /^\+ /);
  return tag;
}

/**
 * Suspended async frames (generator objects) of the functions named, counted in a heap snapshot
 * of this process, relay and clients together.
 */
function suspendedFrames(names: string[]): number {
  const dir = Deno.makeTempDirSync({ prefix: "tern-heap-" });
  try {
    const file = writeHeapSnapshot(`${dir}/idle.heapsnapshot`);
    const snap = JSON.parse(Deno.readTextFileSync(file));
    const meta = snap.snapshot.meta;
    const nf = meta.node_fields.length, ef = meta.edge_fields.length;
    const nType = meta.node_fields.indexOf("type"), nName = meta.node_fields.indexOf("name");
    const nEdges = meta.node_fields.indexOf("edge_count");
    const eName = meta.edge_fields.indexOf("name_or_index"),
      eTo = meta.edge_fields.indexOf("to_node");
    const eType = meta.edge_fields.indexOf("type");
    const types: string[] = meta.node_types[0];
    const edgeTypes: string[] = meta.edge_types[0];
    const { nodes, edges, strings } = snap;
    let count = 0;
    for (let i = 0, e = 0; i < nodes.length; i += nf) {
      const edgeCount = nodes[i + nEdges];
      if (types[nodes[i + nType]] === "object" && strings[nodes[i + nName]] === "Generator") {
        for (let k = e; k < e + edgeCount * ef; k += ef) {
          const kind = edgeTypes[edges[k + eType]];
          if (kind === "element" || kind === "hidden") continue;
          if (strings[edges[k + eName]] !== "function") continue;
          if (names.includes(strings[nodes[edges[k + eTo] + nName]])) count++;
        }
      }
      e += edgeCount * ef;
    }
    return count;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("IMAP IDLE hibernates: sessions waiting in IDLE hold no suspended frame of the command loop or of a read", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const clients: ImapTestClient[] = [];
    const tags: string[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await session(t, b);
      assert.ok((await c.cmd("SELECT INBOX")).ok);
      tags.push(await idle(c));
      clients.push(c);
    }
    // What a session used to wait in for hours: run(), its command, the IDLE handler and the
    // read of DONE. (The test's own clients read with other functions.)
    assert.equal(suspendedFrames(["#active", "#command", "#idleWoke", "readLine"]), 0);
    // And every one still wakes at once, and ends.
    await append(t, b.address, 1);
    for (const c of clients) assert.equal(await next(c), "* 1 EXISTS");
    for (const [i, c] of clients.entries()) {
      await c.send("DONE\r\n");
      assert.ok((await c.collect(tags[i])).ok);
      c.close();
    }
  });
});

Deno.test("IMAP IDLE: expunges, new mail and flag changes while asleep keep sequence numbers right, in IDLE and after DONE", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    for (let n = 1; n <= 3; n++) await append(t, b.address, n);
    const s = await session(t, b);
    assert.ok((await s.cmd("SELECT INBOX")).ok);
    const other = await session(t, b);
    assert.ok((await other.cmd("SELECT INBOX")).ok);
    let tag = await idle(s);
    // Another session expunges the middle message: sequence number 2 goes.
    assert.ok((await other.cmd("UID STORE 2 +FLAGS.SILENT (\\Deleted)")).ok);
    assert.ok((await other.cmd("UID EXPUNGE 2")).ok);
    let line = await next(s);
    if (/^\* 2 FETCH/.test(line)) line = await next(s);
    assert.equal(line, "* 2 EXPUNGE");
    // New mail is number 3, then a flag change of UID 3 (now number 2).
    await append(t, b.address, 4);
    assert.equal(await next(s), "* 3 EXISTS");
    assert.ok((await other.cmd("UID STORE 3 +FLAGS.SILENT (\\Flagged)")).ok);
    assert.match(await next(s), /^\* 2 FETCH \(UID 3 FLAGS \((\\Recent )?\\Flagged\)\)$/);
    await s.send("DONE\r\n");
    assert.ok((await s.collect(tag)).ok);
    // The session's map after waking: 1 → UID 1, 2 → UID 3, 3 → UID 4.
    const f = await s.cmd("FETCH 1:* (UID)");
    assert.deepEqual(f.untagged.filter((l) => / FETCH /.test(l)), [
      "* 1 FETCH (UID 1)",
      "* 2 FETCH (UID 3)",
      "* 3 FETCH (UID 4)",
    ]);
    // Asleep again: an expunge of the first message, and one of the last.
    tag = await idle(s);
    assert.ok((await other.cmd("UID STORE 1,4 +FLAGS.SILENT (\\Deleted)")).ok);
    assert.ok((await other.cmd("UID EXPUNGE 1,4")).ok);
    const gone: string[] = [];
    while (gone.length < 2) {
      const l = await next(s);
      if (/ EXPUNGE$/.test(l)) gone.push(l);
    }
    assert.deepEqual(gone, ["* 3 EXPUNGE", "* 1 EXPUNGE"]);
    await s.send("DONE\r\n");
    assert.ok((await s.collect(tag)).ok);
    const g = await s.cmd("UID FETCH 1:* (UID)");
    assert.deepEqual(g.untagged.filter((l) => / FETCH /.test(l)), ["* 1 FETCH (UID 3)"]);
    s.close();
    other.close();
  });
});

Deno.test("IMAP IDLE: DONE in two pieces with new mail between, DONE and a command in one packet, a bad line and an overlong one", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const s = await session(t, b);
    assert.ok((await s.cmd("SELECT INBOX")).ok);
    let tag = await idle(s);
    await s.send("DO");
    // Half a line does not end the sleep: new mail is still reported at once.
    await append(t, b.address, 1);
    assert.equal(await next(s), "* 1 EXISTS");
    const noop = "n1";
    await s.send(`NE\r\n${noop} NOOP\r\n`);
    assert.ok((await s.collect(tag)).ok);
    assert.ok((await s.collect(noop)).ok);
    // Anything but DONE ends IDLE with BAD; the session goes on.
    tag = await idle(s);
    await s.send("STOP\r\n");
    assert.match((await s.collect(tag)).status, /^BAD Expected DONE/);
    assert.ok((await s.cmd("NOOP")).ok);
    tag = await idle(s);
    await s.send("x".repeat(2000) + "\r\n");
    assert.match((await s.collect(tag)).status, /^BAD \[TOOBIG\]/);
    assert.ok((await s.cmd("NOOP")).ok);
    s.close();
  });
});

/** A value of the metrics page (NaN when absent). */
async function metric(t: TestRelay, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`http://${t.relay.addresses.metrics}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : NaN;
}

Deno.test("IMAP IDLE: a client that goes away mid-IDLE ends its session and leaves IDLE's count", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const s = await session(t, b);
    assert.ok((await s.cmd("SELECT INBOX")).ok);
    await idle(s);
    assert.equal(await metric(t, "tern_imap_idle_sessions"), 1);
    s.close();
    const deadline = Date.now() + 30_000;
    while (
      (await metric(t, "tern_imap_idle_sessions")) !== 0 ||
      (await metric(t, "tern_imap_connections", '{listener="imaps"}')) !== 0
    ) {
      assert.ok(Date.now() < deadline, "the session did not end within 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    // The account's changes reach nobody now, and the relay goes on.
    await append(t, b.address, 1);
    const again = await session(t, b);
    assert.match((await again.cmd("SELECT INBOX")).untagged.join("\n"), /\* 1 EXISTS/);
    again.close();
  }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
});

Deno.test("IMAP sessions share one listener on the shutdown signal: none added per session", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    // The first session may add the one listener its listener's signal gets.
    const first = await session(t, b);
    assert.ok((await first.cmd("SELECT INBOX")).ok);
    const add = AbortSignal.prototype.addEventListener;
    let added = 0;
    AbortSignal.prototype.addEventListener = function (
      this: AbortSignal,
      ...args: Parameters<typeof add>
    ) {
      if (args[0] === "abort") added++;
      return add.apply(this, args);
    };
    const clients: ImapTestClient[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = await session(t, b);
        assert.ok((await c.cmd("SELECT INBOX")).ok);
        await idle(c);
        clients.push(c);
      }
    } finally {
      AbortSignal.prototype.addEventListener = add;
    }
    assert.equal(added, 0, "abort listeners added by 5 more sessions");
    for (const c of [first, ...clients]) c.close();
  });
});

Deno.test("SIGTERM: every IMAP session, in IDLE or between commands, is told the server is shutting down", async () => {
  const tern = await startTern("", { log: "off" });
  const clients: WireClient[] = [];
  try {
    const idler = await imapLogin(tern, "shutdown1", "password-123456");
    clients.push(idler);
    assert.match((await idler.cmd("s", "SELECT INBOX")).status, /^OK/);
    await idler.write("i IDLE\r\n");
    assert.match(await idler.line(), /^\+ /);
    const waiting = await imapLogin(tern, "shutdown2", "password-123456");
    clients.push(waiting);
    const stopped = tern.stop();
    for (const c of clients) {
      let line = await c.line();
      while (line === "* OK Still here") line = await c.line();
      assert.equal(line, "* BYE Server shutting down");
    }
    await stopped;
  } finally {
    for (const c of clients) c.close();
    await tern.stop();
  }
});
