// Abuse: a connection flood from one address is bounded while another address keeps working;
// password guessing slows down; /mxdeliv never relays; IMAP line bombs are refused and the
// session stays usable.

import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { createAccount, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";

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

Deno.test("password guessing gets slower; the right password still works", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    await c.reply();
    await c.cmd("EHLO x.test");
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      const r = await c.login(user.address, `wrong-password-${i}`);
      times.push(performance.now() - t0);
      assert.equal(r.code, 535);
    }
    c.close();
    assert.ok(times[7] >= 500, `later failures are slowed down: ${times}`);
    const ok = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    await ok.reply();
    await ok.cmd("EHLO x.test");
    assert.equal((await ok.login(user.address, user.password)).code, 235);
    ok.close();
  });
});

Deno.test("/mxdeliv never relays to other domains", async () => {
  await withRelay(async (t) => {
    const r = await fetch(`http://${t.relay.addresses.http}/mxdeliv`, {
      method: "POST",
      headers: { "x-mail-from": "a@remote.example", "x-mail-to": "victim@elsewhere.example" },
      body: "From: <a@remote.example>\r\nSubject: x\r\n\r\nhello\r\n",
    });
    const text = await r.text();
    assert.equal(r.status, 400);
    assert.match(text, /^5\d\d /);
    assert.equal(await t.relay.services.store.countQueued(), 0);
  });
});

Deno.test("IMAP line and literal bombs are refused and the session stays usable", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
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

/** The first line a TLS client connecting from `localAddress` gets from `port`. */
function tlsFirstLine(port: number, localAddress: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: "127.0.0.1", port, localAddress });
    raw.on("error", reject);
    const socket = tls.connect({
      socket: raw,
      ca: caPem,
      servername: "localhost",
      checkServerIdentity: () => undefined,
    });
    let buf = "";
    socket.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      const i = buf.indexOf("\r\n");
      if (i >= 0) {
        socket.destroy();
        resolve(buf.slice(0, i));
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(buf));
  });
}

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
