// Abuse: a connection flood from one address is bounded while another address keeps working;
// password guessing slows down; /mxdeliv never relays; IMAP line bombs are refused and the
// session stays usable; a LIST pattern made to backtrack does not stop the relay.

import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { passwordWork } from "../src/auth/mod.ts";
import { startTern } from "./support/tern_process.ts";
import { tlsFirstLine } from "./support/wire_client.ts";

/** A client on the relay's IMAPS port, not logged in. */
async function imapsClient(t: TestRelay): Promise<ImapTestClient> {
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
  return client;
}

function firstLine(
  port: number,
  localAddress: string,
): Promise<{ line: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    let buf = "";
    socket.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      const i = buf.indexOf("\r\n");
      if (i >= 0) resolve({ line: buf.slice(0, i), socket });
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ line: buf, socket }));
  });
}

Deno.test("a connection flood from one address is bounded; others keep working", async () => {
  await withRelay(async (t) => {
    const port = t.addr("smtp").port;
    const open: net.Socket[] = [];
    try {
      const greetings: string[] = [];
      for (let i = 0; i < 25; i++) {
        const { line, socket } = await firstLine(port, "127.0.0.1");
        open.push(socket);
        greetings.push(line);
      }
      assert.equal(greetings.filter((g) => g.startsWith("220 ")).length, 20);
      assert.equal(greetings.filter((g) => g.startsWith("421 4.7.0")).length, 5);
      // Another client address is served normally.
      const other = await firstLine(port, "127.0.0.2");
      open.push(other.socket);
      assert.match(other.line, /^220 /);
    } finally {
      for (const s of open) s.destroy();
    }
  }, { overrides: { max_connections_per_ip: 20 } });
});

/**
 * One line-protocol exchange over TLS from `localAddress`: the greeting, then each command's final
 * reply line (a command "tN ..." waits for IMAP tag tN; others for the last line of an SMTP reply).
 */
async function tlsExchange(
  port: number,
  localAddress: string,
  caPem: string,
  commands: string[],
): Promise<string[]> {
  const raw = net.connect({ host: "127.0.0.1", port, localAddress });
  const socket = tls.connect({ socket: raw, ca: caPem, servername: "localhost" });
  let buf = "";
  const waiters: (() => void)[] = [];
  socket.on("data", (d: Uint8Array) => {
    buf += new TextDecoder().decode(d);
    waiters.splice(0).forEach((w) => w());
  });
  const closed = new Promise<void>((r) => socket.on("close", () => r()));
  socket.on("error", () => waiters.splice(0).forEach((w) => w()));
  const final = (line: string, tag: string | null) =>
    tag ? line.startsWith(`${tag} `) : /^\d{3} /.test(line) || line.startsWith("* OK");
  const readFinal = async (tag: string | null) => {
    for (;;) {
      const lines = buf.split("\r\n");
      for (let i = 0; i < lines.length - 1; i++) {
        if (final(lines[i], tag)) {
          buf = lines.slice(i + 1).join("\r\n");
          return lines[i];
        }
      }
      if (socket.destroyed) throw new Error(`closed; got ${JSON.stringify(buf)}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  try {
    const out = [await readFinal(null)];
    for (const c of commands) {
      const tag = /^(t\d+) /.exec(c)?.[1] ?? null;
      socket.write(c + "\r\n");
      out.push(await readFinal(tag));
    }
    return out;
  } finally {
    socket.destroy();
    await closed;
  }
}

const imapLogin = (user: string, pw: string) => `t0 LOGIN "${user}" "${pw}"`;
const smtpAuth = (user: string, pw: string) => `AUTH PLAIN ${btoa(`\0${user}\0${pw}`)}`;

Deno.test("login throttling: per address and per account, over IMAP and SMTP, not reset by another login", async () => {
  await withRelay(async (t) => {
    const victim = await createAccount(t, "victim001");
    const guesser = await createAccount(t, "guesser01");
    const imaps = t.addr("imaps").port;
    const smtps = t.addr("submissions").port;
    const imap = (from: string, user: string, pw: string) =>
      tlsExchange(imaps, from, t.caPem, [imapLogin(user, pw)]).then((r) => r[1]);
    const smtp = (from: string, user: string, pw: string) =>
      tlsExchange(smtps, from, t.caPem, ["EHLO x.test", smtpAuth(user, pw)]).then((r) => r[2]);
    // The victim's phone logs in from 127.0.0.5 before the attack; the guesser from 127.0.0.2.
    assert.match(await imap("127.0.0.5", victim.address, victim.password), /^t0 OK/);
    assert.match(await imap("127.0.0.2", guesser.address, guesser.password), /^t0 OK/);
    // Three free failures (IMAP and SMTP AUTH count together)...
    assert.match(
      await imap("127.0.0.2", victim.address, "guess-1-xxx"),
      /^t0 NO \[AUTHENTICATIONFAILED\]/,
    );
    assert.match(await smtp("127.0.0.2", victim.address, "guess-2-xxx"), /^535 /);
    assert.match(
      await imap("127.0.0.2", victim.address, "guess-3-xxx"),
      /^t0 NO \[AUTHENTICATIONFAILED\]/,
    );
    // ...the guesser's own successful login in between resets nothing...
    assert.match(await smtp("127.0.0.2", guesser.address, guesser.password), /^235 /);
    // ...so the next guess from that address is throttled (this config refuses rather than waits).
    assert.match(await imap("127.0.0.2", victim.address, "guess-4-xxx"), /^t0 NO \[UNAVAILABLE\]/);
    assert.match(await smtp("127.0.0.2", victim.address, "guess-4-xxx"), /^454 4\.7\.0 /);
    // Guessing the same account from another address is throttled too (per account)...
    assert.match(await imap("127.0.0.3", victim.address, "guess-5-xxx"), /^t0 NO \[UNAVAILABLE\]/);
    // ...while that address's other logins and the victim's own phone are not held up.
    assert.match(await imap("127.0.0.3", guesser.address, guesser.password), /^t0 OK/);
    assert.match(await imap("127.0.0.5", victim.address, victim.password), /^t0 OK/);
    assert.match(await smtp("127.0.0.5", victim.address, victim.password), /^235 /);
  }, {
    // Gaps of a minute: however slowly this machine runs the steps, none passes before the next.
    relay: {
      loginThrottle: { freeFailures: 3, maxWaitMs: 0, baseDelayMs: 60_000, maxDelayMs: 60_000 },
    },
  });
});

Deno.test("login: an unknown name costs the same password verification as a wrong password", async () => {
  await withRelay(async (t) => {
    await t.relay.services.settings.set("jit_enabled", "false");
    const user = await createAccount(t, "known0001");
    const imaps = t.addr("imaps").port;
    const cost = async (name: string, pw: string) => {
      const before = passwordWork().verifications + passwordWork().hashes;
      const r = await tlsExchange(imaps, "127.0.0.4", t.caPem, [imapLogin(name, pw)]);
      assert.match(r[1], /^t0 NO \[AUTHENTICATIONFAILED\]/);
      return passwordWork().verifications + passwordWork().hashes - before;
    };
    assert.equal(await cost(user.address, "wrong-password-1"), 1, "wrong password");
    assert.equal(await cost(`nobody001@${t.domain}`, "wrong-password-1"), 1, "unknown name");
    assert.equal(await cost("someone@elsewhere.example", "wrong-password-1"), 1, "other domain");
  });
});

Deno.test("/mxdeliv never relays to other domains", async () => {
  await withRelay(async (t) => {
    using client = Deno.createHttpClient({ caCerts: [t.caPem] });
    const r = await fetch(`https://${t.relay.addresses.https}/mxdeliv`, {
      method: "POST",
      client,
      headers: { "x-mail-from": "a@remote.example", "x-mail-to": "victim@elsewhere.example" },
      body: "From: <a@remote.example>\r\nSubject: x\r\n\r\nhello\r\n",
    });
    const text = await r.text();
    assert.equal(r.status, 400);
    assert.match(text, /^5\d\d /);
    assert.equal(await t.relay.services.store.countQueued(), 0);
  }, { overrides: { "listen.https": "127.0.0.1:0" } });
});

Deno.test("IMAP line and literal bombs are refused and the session stays usable", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const client = await imapsClient(t);
    assert.ok((await client.login(user.address, user.password)).ok);
    await client.send(`a1 NOOP ${"x".repeat(200_000)}\r\n`);
    assert.match(await client.readResponse(), /BAD/);
    const tag = client.nextTag();
    await client.send(`${tag} SETMETADATA INBOX (/private/devicetoken {999999999}\r\n`);
    assert.match((await client.collect(tag)).status, /^NO \[TOOBIG\]/);
    assert.ok((await client.cmd("NOOP")).ok);
    client.close();
  });
});

Deno.test("IMAP: a client trickling bytes without logging in is logged out at the login deadline; one logged in stays", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const connect = () => imapsClient(t);
    const member = await connect();
    assert.ok((await member.login(user.address, user.password)).ok);
    // One byte every 100 ms, never a complete line: each restarts the idle clock (2 min).
    const trickler = await connect();
    const timer = setInterval(() => trickler.send("N").catch(() => {}), 100);
    try {
      // (Within readWithin's 30 s; the idle limit alone would never end it.)
      assert.equal(await trickler.readResponse(), "* BYE Disconnected for inactivity.");
      await assert.rejects(trickler.readResponse(), /closed/);
    } finally {
      clearInterval(timer);
      trickler.close();
    }
    // The deadline ended with the login: the session that logged in is past it and still served.
    assert.ok((await member.cmd("NOOP")).ok);
    member.close();
  }, { relay: { imapLoginDeadlineMs: 5000 } });
});

/** Spool files (bodies/tmp) of the test relay's store. */
async function spoolFiles(t: TestRelay): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${t.dir}/data/bodies/tmp`)) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names;
}

/** Until `check` holds (a bound of 30 s, not a measurement). */
async function until(check: () => Promise<boolean>, what: string) {
  const end = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within 30 s: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("SMTP: a message trickled a byte at a time after a good start ends at DATA's deadline (421 4.4.2), its spool freed, nothing stored", async () => {
  await withRelay(async (t) => {
    const alice = await createAccount(t, "alice0001");
    const bob = await createAccount(t, "bob000001");
    const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    let timer: ReturnType<typeof setInterval> | undefined;
    try {
      assert.equal((await c.reply()).code, 220);
      assert.equal((await c.cmd("EHLO client.example")).code, 250);
      assert.equal((await c.login(alice.address, alice.password)).code, 235);
      assert.equal((await c.cmd(`MAIL FROM:<${alice.address}>`)).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${bob.address}>`)).code, 250);
      assert.equal((await c.cmd("DATA")).code, 354);
      // 200 KB at once (spooled to a file), then a byte every 20 ms: 50 B/s, a tenth of the
      // minimum rate, while each byte restarts the idle clock (1.5 s).
      await c.send(`Subject: slow\r\n\r\n${`${"x".repeat(98)}\r\n`.repeat(2000)}`);
      await until(async () => (await spoolFiles(t)).length > 0, "the message is spooled");
      timer = setInterval(() => c.send("y").catch(() => {}), 20);
      const r = await c.reply();
      assert.equal(r.text, `421 4.4.2 ${t.relay.config.hostname} Error: timeout exceeded`);
      assert.ok(await c.closedByServer());
      // Freed before the reply was sent.
      assert.deepEqual(await spoolFiles(t), []);
      assert.equal(await t.relay.services.store.countQueued(), 0);
      const account = await t.relay.services.store.getAccount(bob.address);
      const mb = await t.relay.services.store.getMailbox(account!.id, "INBOX");
      assert.deepEqual(await t.relay.services.store.listMessages(mb!.id), []);
    } finally {
      clearInterval(timer);
      c.close();
    }
  }, { relay: { smtpDataTimeoutMs: 1500 } });
});

Deno.test("IMAP after login: a command or an APPEND trickled a byte at a time ends at the command deadline; IDLE, silent past it, goes on", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const connect = async () => {
      const client = await imapsClient(t);
      assert.ok((await client.login(user.address, user.password)).ok);
      return client;
    };
    // IDLE: nothing from the client for twice the command deadline, then DONE.
    const idler = await connect();
    assert.ok((await idler.cmd("SELECT INBOX")).ok);
    await idler.send("i1 IDLE\r\n");
    assert.equal(await idler.readResponse(), "+ idling");
    await new Promise((r) => setTimeout(r, 3000));
    await idler.send("DONE\r\n");
    assert.equal((await idler.collect("i1")).status, "OK IDLE terminated");
    // And the wait for a command is not bounded by it either.
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok((await idler.cmd("NOOP")).ok);

    /** Sends `byte` every `ms` until the server ends the session with the command deadline's BYE. */
    const trickleUntilBye = async (c: typeof idler, byte: string, ms: number) => {
      const timer = setInterval(() => c.send(byte).catch(() => {}), ms);
      try {
        assert.equal(await c.readResponse(), "* BYE Disconnected: command not received in time");
        await assert.rejects(c.readResponse(), /closed/);
      } finally {
        clearInterval(timer);
        c.close();
      }
    };

    // A command line trickled: one byte every 50 ms (each restarts the 31-minute idle clock).
    await trickleUntilBye(await connect(), "N", 50);

    // An APPEND: 200 KB of its message at once (spooled), then a byte every 20 ms.
    const appender = await connect();
    await appender.send("a1 APPEND INBOX {1000000+}\r\n");
    await appender.send(`Subject: slow\r\n\r\n${`${"x".repeat(98)}\r\n`.repeat(2000)}`);
    await until(async () => (await spoolFiles(t)).length > 0, "the message is spooled");
    await trickleUntilBye(appender, "y", 20);
    await until(async () => (await spoolFiles(t)).length === 0, "the spool is freed");
    const status = await idler.cmd("STATUS INBOX (MESSAGES)");
    assert.match(status.untagged[0], /\(MESSAGES 0\)/);
    idler.close();
  }, { relay: { imapCommandDeadlineMs: 1500 } });
});

Deno.test("IMAP after login: one command (not APPEND) holds at most 64 KiB of lines and literals, refused before it is sent", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const client = await imapsClient(t);
    assert.ok((await client.login(user.address, user.password)).ok);
    // A synchronizing literal within the per-literal limit, then one that takes the command
    // over the total: the second is refused with the tagged NO before the client sends it.
    let tag = client.nextTag();
    await client.send(`${tag} SETMETADATA INBOX (/private/devicetoken {40000}\r\n`);
    assert.match(await client.readResponse(), /^\+ /);
    await client.send(`${"t".repeat(40000)} /private/x {40000}\r\n`);
    assert.match(await client.readResponse(), new RegExp(`^${tag} NO \\[TOOBIG\\]`));
    assert.ok((await client.cmd("NOOP")).ok);
    // Non-synchronizing literals of 60 KB each, 40 of them (2.4 MB) in one SEARCH: the relay
    // takes the first, refuses the second by the total and drops the rest unheld.
    tag = client.nextTag();
    const lit = "q".repeat(60_000);
    let cmd = `${tag} SEARCH`;
    for (let i = 0; i < 40; i++) cmd += ` TEXT {${lit.length}+}\r\n${lit}`;
    await client.send(cmd + "\r\n");
    const refused = await client.collect(tag);
    assert.match(refused.status, /^NO \[TOOBIG\]/);
    assert.deepEqual(refused.untagged, []);
    // In sync and usable; a device token as Delta Chat sets it is still taken.
    assert.ok((await client.cmd("NOOP")).ok);
    tag = client.nextTag();
    await client.send(`${tag} SETMETADATA INBOX (/private/devicetoken {300}\r\n`);
    assert.match(await client.readResponse(), /^\+ /);
    await client.send(`${"d".repeat(300)})\r\n`);
    assert.match((await client.collect(tag)).status, /^OK/);
    client.close();
  });
});

Deno.test("a LIST pattern made to backtrack (*a*a…*b) does not stop the relay for everyone", async () => {
  // A relay process of its own: were the pattern a backtracking regular expression, the event
  // loop would be stuck for hours, and an in-process relay would stop this test with it.
  const tern = await startTern();
  const connect = async () => {
    const { client } = await ImapTestClient.connect(
      { hostname: "127.0.0.1", port: tern.port("imaps") },
      { tls: true, caPem: tern.caPem },
    );
    return client;
  };
  try {
    const user = `alice0001@[127.0.0.1]`;
    const a = await connect();
    assert.ok((await a.login(user, "password-123456")).ok);
    assert.ok((await a.cmd(`CREATE ${"a".repeat(60)}`)).ok);
    const tag = a.nextTag();
    await a.send(`${tag} LIST "" "${"*a".repeat(30)}b"\r\n`);
    // Meanwhile another client is greeted, logs in and is answered (within readWithin's 30 s).
    const b = await connect();
    assert.ok((await b.login(user, "password-123456")).ok);
    assert.ok((await b.cmd("NOOP")).ok);
    const list = await a.collect(tag);
    assert.ok(list.ok, list.status);
    assert.deepEqual(list.untagged, []);
    const all = await a.cmd(`LIST "" "*a*%a"`);
    assert.equal(all.untagged.length, 1, all.untagged.join("\n"));
    for (const c of [a, b]) c.close();
  } finally {
    await tern.stop();
  }
});

Deno.test("slow clients (slowloris) are bounded per address; others are served at once", async () => {
  await withRelay(async (t) => {
    for (const listener of ["smtp", "imap"] as const) {
      const port = t.addr(listener).port;
      const slow: net.Socket[] = [];
      const timers: ReturnType<typeof setInterval>[] = [];
      try {
        const greeted: Promise<void>[] = [];
        for (let i = 0; i < 10; i++) {
          const s = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.1" });
          s.on("error", () => {});
          greeted.push(new Promise((r) => s.once("data", () => r())));
          // One byte every 100 ms, never a complete line.
          timers.push(setInterval(() => s.write("N"), 100));
          slow.push(s);
        }
        // Each got its greeting: the relay holds all ten.
        await Promise.all(greeted);
        const [busy, ok] = listener === "smtp"
          ? [/^421 4\.7\.0/, /^220 /]
          : [/^\* BYE /, /^\* OK /];
        const refused = await firstLine(port, "127.0.0.1");
        refused.socket.destroy();
        assert.match(refused.line, busy, `${listener}: the 11th connection from the address`);
        const other = await firstLine(port, "127.0.0.2");
        other.socket.destroy();
        assert.match(other.line, ok, `${listener}: another address`);
      } finally {
        timers.forEach(clearInterval);
        for (const s of slow) s.destroy();
      }
    }
  }, { overrides: { max_connections_per_ip: 10 } });
});

Deno.test("implicit TLS: clients that never start TLS are bounded per address, then dropped", async () => {
  await withRelay(async (t) => {
    for (const listener of ["submissions", "imaps"] as const) {
      const port = t.addr(listener).port;
      const silent: net.Socket[] = [];
      const closed: Promise<void>[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const s = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
          s.on("error", () => {});
          closed.push(new Promise((r) => s.on("close", () => r())));
          silent.push(s);
        }
        // The 11th from that address is answered over TLS and closed; other addresses are served.
        // A silent client shows nothing until the relay has accepted all ten: ask again until
        // the 11th is turned away (a relay without the limit never does).
        const busy = listener === "submissions" ? /^421 4\.7\.0/ : /^\* BYE /;
        const ok = listener === "submissions" ? /^220 / : /^\* OK /;
        let over = "";
        for (const until = Date.now() + 10_000; Date.now() < until;) {
          over = await tlsFirstLine(port, "127.0.0.2", t.caPem);
          if (busy.test(over)) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.match(over, busy, `${listener}: the 11th connection from the silent address`);
        assert.match(await tlsFirstLine(port, "127.0.0.1", t.caPem), ok, `${listener}: others`);
        // After the handshake deadline the server drops every silent socket.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const outcome = await Promise.race([
          Promise.all(closed).then(() => "all closed"),
          new Promise((r) => (timer = setTimeout(() => r("still open after 10 s"), 10_000))),
        ]);
        clearTimeout(timer);
        assert.equal(outcome, "all closed", listener);
      } finally {
        for (const s of silent) s.destroy();
      }
    }
  }, { overrides: { max_connections_per_ip: 10 }, relay: { handshakeTimeoutMs: 500 } });
});
