import assert from "node:assert/strict";
import { listen } from "./listen.ts";
import { createSecureContext, generateSelfSigned } from "./tls.ts";
import { LineTooLongError } from "./connection.ts";
import type { Connection } from "./connection.ts";

const material = await generateSelfSigned(["localhost", "127.0.0.1"]);
const ctx = createSecureContext(material);
const dec = new TextDecoder();
const enc = new TextEncoder();

/** A tiny line protocol: "STARTTLS" upgrades, "LONG" reads with a 10-byte limit, else echo. */
async function session(conn: Connection) {
  await conn.write("* ready\r\n");
  while (true) {
    let line: Uint8Array | null;
    try {
      line = await conn.readLine(100);
    } catch (err) {
      if (err instanceof LineTooLongError) {
        await conn.write("ERR too long\r\n");
        continue;
      }
      throw err;
    }
    if (line === null) return;
    const text = dec.decode(line);
    if (text === "STARTTLS") {
      if (conn.bufferedBytes() > 0) {
        await conn.write("ERR pipelined\r\n");
        return;
      }
      await conn.startTls("OK go\r\n");
      await conn.write(`* tls=${conn.isTls}\r\n`);
    } else if (text === "QUIT") {
      await conn.write("BYE\r\n");
      return;
    } else await conn.write(`ECHO ${text}\r\n`);
  }
}

async function readUntil(c: Deno.Conn, needle: string): Promise<string> {
  let got = "";
  const buf = new Uint8Array(4096);
  while (!got.includes(needle)) {
    const n = await c.read(buf);
    if (n === null) break;
    got += dec.decode(buf.subarray(0, n));
  }
  return got;
}

Deno.test("listen() serves plain lines and upgrades with STARTTLS (Deno client)", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    secureContext: () => ctx,
    onConnection: session,
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.match(await readUntil(c, "ready\r\n"), /ready/);
    await c.write(enc.encode("hello\r\n"));
    assert.equal(await readUntil(c, "\r\n"), "ECHO hello\r\n");
    await c.write(enc.encode("STARTTLS\r\n"));
    assert.equal(await readUntil(c, "\r\n"), "OK go\r\n");
    const t = await Deno.startTls(c, { hostname: "localhost", caCerts: [material.caPem!] });
    assert.equal(await readUntil(t, "\r\n"), "* tls=true\r\n");
    await t.write(enc.encode("QUIT\r\n"));
    assert.equal(await readUntil(t, "BYE\r\n"), "BYE\r\n");
    t.close();
  } finally {
    await l.close();
  }
});

Deno.test("listen() refuses bytes pipelined after STARTTLS", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    secureContext: () => ctx,
    onConnection: session,
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await readUntil(c, "ready\r\n");
    await c.write(enc.encode("STARTTLS\r\nECHO injected\r\n"));
    assert.match(await readUntil(c, "\r\n"), /ERR pipelined/);
    c.close();
  } finally {
    await l.close();
  }
});

Deno.test("listen() serves implicit TLS and rejects over-long lines", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "tls",
    secureContext: () => ctx,
    onConnection: session,
  });
  try {
    const c = await Deno.connectTls({
      hostname: "localhost",
      port: l.port,
      caCerts: [material.caPem!],
    });
    await readUntil(c, "ready\r\n");
    await c.write(enc.encode("x".repeat(5000) + "\r\nshort\r\n"));
    const got = await readUntil(c, "ECHO short\r\n");
    assert.equal(got, "ERR too long\r\nECHO short\r\n");
    c.close();
  } finally {
    await l.close();
  }
});

Deno.test("listen() limits connections per client address", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    maxConnectionsPerIp: 2,
    overLimitReply: "421 too many\r\n",
    onConnection: session,
  });
  try {
    const a = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    const b = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await readUntil(a, "ready");
    await readUntil(b, "ready");
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.equal(await readUntil(c, "\r\n"), "421 too many\r\n");
    for (const x of [a, b, c]) x.close();
  } finally {
    await l.close();
  }
});

Deno.test("STARTTLS works with openssl s_client", { ignore: !(await hasOpenssl()) }, async () => {
  const smtpLike = async (conn: Connection) => {
    await conn.write("220 test ESMTP\r\n");
    while (true) {
      const line = await conn.readLine(512);
      if (line === null) return;
      const cmd = dec.decode(line).toUpperCase();
      if (cmd.startsWith("EHLO")) await conn.write("250-test\r\n250 STARTTLS\r\n");
      else if (cmd === "STARTTLS") await conn.startTls("220 2.0.0 Ready to start TLS\r\n");
      else if (cmd === "QUIT") return void await conn.write("221 bye\r\n");
      else await conn.write("250 ok\r\n");
    }
  };
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    secureContext: () => ctx,
    onConnection: smtpLike,
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, material.caPem!);
    for (let i = 0; i < 5; i++) {
      const p = new Deno.Command("openssl", {
        args: [
          "s_client",
          "-connect",
          `127.0.0.1:${l.port}`,
          "-starttls",
          "smtp",
          "-CAfile",
          `${dir}/ca.pem`,
          "-verify_return_error",
          "-servername",
          "localhost",
          "-quiet",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = p.stdin.getWriter();
      await w.write(enc.encode("NOOP\r\nQUIT\r\n"));
      await w.close();
      const out = await p.output();
      assert.match(dec.decode(out.stdout), /250 ok[\s\S]*221 bye/, dec.decode(out.stderr));
    }
  } finally {
    await l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function hasOpenssl() {
  try {
    return (await new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}
