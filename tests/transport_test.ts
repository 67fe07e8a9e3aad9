// The transport under real clients: messages around every buffer size over 993 with and without
// COMPRESS, bounded input before login, decompression bombs, clients that vanish, the TLS policy
// (openssl forcing TLS 1.2 and 1.3) and every listener over IPv6.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { WireClient } from "./support/wire_client.ts";
import { createLogger } from "../src/log/mod.ts";
import { requireTool } from "./support/tools.ts";

const enc = new TextEncoder();

/** A message of exactly `size` bytes: headers, then random base64 lines (barely compressible). */
function messageOfSize(size: number): Uint8Array {
  const head = enc.encode("From: <a@x.test>\r\nSubject: size test\r\n\r\n");
  const out = new Uint8Array(size);
  out.set(head.subarray(0, size));
  const alphabet = enc.encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  const random = crypto.getRandomValues(new Uint8Array(65536));
  for (let i = head.length, col = 0; i < size; i++, col++) {
    if (col === 76) {
      out[i] = 13;
      if (i + 1 < size) out[++i] = 10;
      col = -1;
      continue;
    }
    out[i] = alphabet[random[i & 65535] & 63];
  }
  return out;
}

async function imapLogin(t: TestRelay, user: { address: string; password: string }) {
  const c = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
  assert.match(await c.line(), /^\* OK /);
  assert.match((await c.cmd("l", `LOGIN ${user.address} ${user.password}`)).status, /^OK/);
  return c;
}

async function compress(c: WireClient) {
  assert.match((await c.cmd("z", "COMPRESS DEFLATE")).status, /^OK/);
  c.startCompression();
}

for (const compressed of [false, true]) {
  const how = compressed ? "with COMPRESS" : "without COMPRESS";
  Deno.test(`APPEND and FETCH of 1 KB, 1 MiB+1, 4 MiB and 30 MB over 993 ${how}`, async () => {
    await withRelay(async (t) => {
      const user = await createAccount(t, "alice0001");
      const c = await imapLogin(t, user);
      if (compressed) await compress(c);
      const sizes = [1000, (1 << 20) + 1, 4 << 20, 30_000_000];
      for (const [i, size] of sizes.entries()) {
        const message = messageOfSize(size);
        await c.write(`a${i} APPEND INBOX {${size}}\r\n`);
        assert.match(await c.line(), /^\+ /);
        await c.write(message);
        await c.write("\r\n");
        const r = await c.response(`a${i}`, 120_000);
        assert.match(r.status, /^OK \[APPENDUID \d+ \d+\]/, `APPEND of ${size} bytes`);
      }
      assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
      const fetched = await c.cmd("f", "FETCH 1:* (RFC822.SIZE BODY.PEEK[])", 120_000);
      assert.match(fetched.status, /^OK/);
      const got = fetched.untagged.filter((l) => / FETCH /.test(l)).map((l) =>
        Number(/RFC822\.SIZE (\d+)/.exec(l)![1])
      );
      assert.deepEqual(got, sizes);
      for (const [i, size] of sizes.entries()) {
        assert.match(fetched.untagged[i], new RegExp(`BODY\\[\\] <${size} bytes>`));
      }
      assert.match((await c.cmd("o", "LOGOUT")).status, /^OK/);
      c.close();
    });
  });
}

Deno.test("COMPRESS: a decompression bomb is cut off, and the relay serves the next client", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const c = await imapLogin(t, user);
    await compress(c);
    // 64 MiB of one byte, no line feed: a few KiB on the wire.
    await c.write("b NOOP ");
    const junk = new Uint8Array(1 << 20).fill(120);
    const refused = c.line(60_000);
    for (let i = 0; i < 64; i++) {
      const closed = await Promise.race([
        c.closed.then(() => true),
        c.write(junk).then(() => false),
      ]);
      if (closed) break;
    }
    assert.equal(await refused, "* BYE [TOOBIG] Command line too long");
    await c.closed;
    const next = await imapLogin(t, user);
    assert.match((await next.cmd("n", "NOOP")).status, /^OK/);
    next.close();
  });
});

Deno.test("before login, oversized commands from 200 connections are cut off", async () => {
  await withRelay(async (t) => {
    const port = t.addr("imaps").port;
    const variants = [
      // A 13 MB LOGIN made of literals, as in the report; the first literal is already too big.
      `a LOGIN {${5000}+}\r\n${"u".repeat(5000)} {3}\r\n`,
      // A long line without a literal.
      `a LOGIN ${"u".repeat(20_000)} pw\r\n`,
      // Many small literals adding up.
      Array.from({ length: 10 }, () => `{2000+}\r\n${"p".repeat(2000)} `).join("") + "\r\n",
    ];
    const clients = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const c = await WireClient.connect(port, { tlsCa: t.caPem });
        await c.line();
        return { c, payload: variants[i % variants.length] };
      }),
    );
    const answers = await Promise.all(clients.map(async ({ c, payload }) => {
      // The server may cut the connection while the payload is still on its way.
      c.write(payload).catch(() => {});
      const lines: string[] = [];
      try {
        while (true) lines.push(await c.line(60_000));
      } catch {
        // closed by the server: what it said is in lines
      }
      await c.closed;
      c.close();
      return lines.join("\n");
    }));
    for (const a of answers) assert.match(a, /\* BYE Input buffer full, aborting$/);
    const user = await createAccount(t, "alice0001");
    const ok = await imapLogin(t, user);
    ok.close();
  });
});

Deno.test("clients that vanish mid-command are a normal end: counted, never logged", async () => {
  const logged: string[] = [];
  const log = createLogger("info", { write: (l) => logged.push(l) });
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const setup = await imapLogin(t, user);
    const big = messageOfSize(2 << 20);
    for (let i = 0; i < 3; i++) {
      await setup.write(`a${i} APPEND INBOX {${big.length}+}\r\n`);
      await setup.write(big);
      await setup.write("\r\n");
      assert.match((await setup.response(`a${i}`)).status, /^OK/);
    }
    setup.close();
    for (let i = 0; i < 10; i++) {
      const c = await imapLogin(t, user);
      if (i % 2) await compress(c);
      await c.cmd("s", "SELECT INBOX");
      await c.write("f UID FETCH 1:* BODY[]\r\n");
      if (i % 3 === 0) await c.line(); // a little of the answer, then gone
      if (i % 2) c.reset();
      else c.close();
    }
    // Mid-literal and mid-handshake too.
    const mid = await imapLogin(t, user);
    await mid.write(`m APPEND INBOX {100000+}\r\n${"x".repeat(50_000)}`);
    mid.reset();
    const raw = await Deno.connect(t.addr("imaps"));
    await raw.write(new Uint8Array([22, 3, 1, 0, 200, 1]));
    raw.close();
    // Every one of them ends, as "gone".
    const metrics = `http://${t.relay.addresses.metrics}/metrics`;
    const gone = async () => {
      const text = await (await fetch(metrics)).text();
      const m = /tern_connection_ends_total\{listener="imaps",reason="gone"\} (\d+)/.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const deadline = Date.now() + 30_000;
    while ((await gone()) < 11 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok((await gone()) >= 11, `ends counted as gone: ${await gone()}`);
    assert.match(await (await fetch(metrics)).text(), /reason="tls"\} 1$/m);
    const next = await imapLogin(t, user);
    assert.match((await next.cmd("n", "NOOP")).status, /^OK/);
    next.close();
  }, { overrides: { "listen.metrics": "127.0.0.1:0" }, relay: { log } });
  const failures = logged.filter((l) => /"level":"error"/.test(l));
  assert.deepEqual(failures, []);
});

Deno.test("a command line the network cut off is not run: no JIT account with half a password, no DELETE of a shorter name", async () => {
  await withRelay(async (t) => {
    const metrics = `http://${t.relay.addresses.metrics}/metrics`;
    const ends = async () => {
      const text = await (await fetch(metrics)).text();
      let n = 0;
      for (
        const m of text.matchAll(/tern_connection_ends_total\{listener="imaps",[^}]*\} (\d+)/g)
      ) {
        n += Number(m[1]);
      }
      return n;
    };
    /** Sends the start of a command line, then the connection is gone; waits for its end. */
    const cutOff = async (c: WireClient, text: string) => {
      const before = await ends();
      await c.write(text);
      c.close();
      const deadline = Date.now() + 30_000;
      while ((await ends()) === before && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await ends(), before + 1, "the session ended");
    };
    const user = { address: `someone01@${t.domain}`, password: "password-123456" };
    // The phone's network goes away three bytes before the end of its LOGIN line.
    const first = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
    assert.match(await first.line(), /^\* OK /);
    await cutOff(first, `l LOGIN ${user.address} ${user.password}`.slice(0, -3));
    assert.equal(await t.relay.services.store.getAccount(user.address), null, "no account made");
    const c = await imapLogin(t, user);
    assert.match((await c.cmd("c", "CREATE Archive")).status, /^OK/);
    assert.match((await c.cmd("c", "CREATE Archive-2026")).status, /^OK/);
    const cut = await imapLogin(t, user);
    await cutOff(cut, "d DELETE Archive-2026".slice(0, -5));
    const list = await c.cmd("s", 'LIST "" *');
    assert.match(list.untagged.join("\n"), /"Archive"/);
    c.close();
  }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
});

const openssl = requireTool("openssl");

/** Whether openssl s_client completes a handshake with the given version flag. */
async function handshake(
  port: number,
  version: "-tls1_2" | "-tls1_3",
  starttls?: "smtp" | "imap",
): Promise<boolean> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, version, "-brief"];
  if (starttls) args.push("-starttls", starttls);
  const out = await new Deno.Command("openssl", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  return /Protocol version: TLSv1\.[23]/.test(text);
}

Deno.test({
  name: openssl.title(
    "TLS policy: 25 takes TLS 1.2 and 1.3 (STARTTLS); 465, 587, 143 and 993 only TLS 1.3",
  ),
  ignore: openssl.ignore,
  async fn() {
    await withRelay(async (t) => {
      const cases: [string, number, "smtp" | "imap" | undefined, boolean][] = [
        ["25", t.addr("smtp").port, "smtp", true],
        ["587", t.addr("submission").port, "smtp", false],
        ["465", t.addr("submissions").port, undefined, false],
        ["143", t.addr("imap").port, "imap", false],
        ["993", t.addr("imaps").port, undefined, false],
      ];
      for (const [name, port, starttls, tls12] of cases) {
        assert.equal(await handshake(port, "-tls1_3", starttls), true, `${name}: TLS 1.3`);
        assert.equal(await handshake(port, "-tls1_2", starttls), tls12, `${name}: TLS 1.2`);
      }
    });
    // Both are configurable.
    await withRelay(async (t) => {
      assert.equal(await handshake(t.addr("imaps").port, "-tls1_2"), true, "993: TLS 1.2 allowed");
      assert.equal(await handshake(t.addr("smtp").port, "-tls1_2", "smtp"), false, "25: 1.3 only");
    }, { overrides: { client_tls_min_version: "1.2", smtp_tls_min_version: "1.3" } });
  },
});

/** Whether this host has an IPv6 loopback to test with. */
function hasIpv6Loopback(): boolean {
  try {
    const l = Deno.listen({ hostname: "::1", port: 0 });
    l.close();
    return true;
  } catch {
    return false;
  }
}

const ipv6 = hasIpv6Loopback();
Deno.test({
  name: "every listener serves over IPv6 ([::1]): 25, 587, 465, 143, 993, HTTP and HTTPS" +
    (ipv6 ? "" : " (ignored: this host has no IPv6 loopback)"),
  ignore: !ipv6,
  async fn() {
    const listen = Object.fromEntries(
      ["smtp", "submission", "submissions", "imap", "imaps", "http", "https"].map((
        n,
      ) => [`listen.${n}`, "[::1]:0"]),
    );
    await withRelay(async (t) => {
      const port = (name: string) => {
        const a = t.relay.addresses[name as "smtp"]!;
        assert.match(a, /^\[::1\]:\d+$/, name);
        return Number(a.slice(a.lastIndexOf(":") + 1));
      };
      const opts = { host: "::1" };
      for (const name of ["smtp", "submission"]) {
        const c = await WireClient.connect(port(name), opts);
        assert.match(await c.line(), /^220 /, name);
        await c.write("EHLO v6.test\r\n");
        while (!/^250 /.test(await c.line())) { /* EHLO lines */ }
        await c.write("STARTTLS\r\n");
        assert.match(await c.line(), /^220 /);
        await c.startTls(t.caPem);
        await c.write("EHLO v6.test\r\n");
        assert.match(await c.line(), /^250[- ]/, `${name} after STARTTLS`);
        c.close();
      }
      const smtps = await WireClient.connect(port("submissions"), { ...opts, tlsCa: t.caPem });
      assert.match(await smtps.line(), /^220 /);
      smtps.close();
      const imap = await WireClient.connect(port("imap"), opts);
      assert.match(await imap.line(), /^\* OK /);
      await imap.write("s STARTTLS\r\n");
      assert.match(await imap.line(), /^s OK/);
      await imap.startTls(t.caPem);
      assert.match((await imap.cmd("c", "CAPABILITY")).status, /^OK/);
      imap.close();
      const imaps = await WireClient.connect(port("imaps"), { ...opts, tlsCa: t.caPem });
      assert.match(await imaps.line(), /^\* OK /);
      imaps.close();
      // Port 80 answers with the redirect to HTTPS.
      const http = await fetch(`http://[::1]:${port("http")}/`, { redirect: "manual" });
      assert.equal(http.status, 301);
      await http.body?.cancel();
      const client = Deno.createHttpClient({ caCerts: [t.caPem] });
      try {
        // A generated certificate names the addresses the relay listens on.
        const https = await fetch(`https://[::1]:${port("https")}/`, { client });
        assert.equal(https.status, 200);
        await https.body?.cancel();
      } finally {
        client.close();
      }
    }, { overrides: listen });
  },
});
