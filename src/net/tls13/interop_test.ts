// The engine against real TLS 1.3 clients over loopback sockets: openssl s_client (each suite,
// both groups, ECDSA / RSA / Ed25519 keys, ALPN, KeyUpdate both ways), Deno.connectTls (rustls),
// node:tls and python3's ssl, each exchanging data both ways and ending with close_notify.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { connect } from "node:tls";
import { concat } from "./bytes.ts";
import { checkClientHello, type HelloCheck } from "./client_hello.ts";
import type { Tls13Credentials } from "./credentials.ts";
import { generateSelfSigned } from "../self_signed.ts";
import { tls13Credentials } from "./credentials.ts";
import {
  ecdsaCredentials,
  type EngineServer,
  opensslCredentials,
  startEngineServer,
} from "./test_harness.ts";

const decoder = new TextDecoder();

/** Runs `openssl s_client` against the server, driving it through stdin, watching stdout. */
async function sClient(server: EngineServer, caPem: string, extra: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "tern-tls13-" });
  await Deno.writeTextFile(`${dir}/ca.pem`, caPem);
  const args = ["s_client", "-connect", `127.0.0.1:${server.port}`, "-tls1_3", "-msg"];
  args.push("-CAfile", `${dir}/ca.pem`, "-servername", "localhost", "-verify_return_error");
  const child = new Deno.Command("openssl", {
    args: [...args, ...extra],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const waiters: { text: RegExp; resolve: () => void }[] = [];
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk);
      for (const w of waiters.filter((w) => w.text.test(output))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  return {
    get output() {
      return output;
    },
    send: (line: string) => writer.write(new TextEncoder().encode(line + "\n")),
    /** Waits (30 s bound) for stdout to match. */
    waitFor(text: RegExp): Promise<void> {
      if (text.test(output)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${text} in:\n${output}`)), 30_000);
        waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    /** Ends stdin (s_client then sends close_notify and exits). */
    async finish() {
      await writer.close();
      const status = await child.status;
      await reading;
      await Deno.remove(dir, { recursive: true });
      return { status, stderr: await stderr };
    },
  };
}

async function sClientSession(
  credentials: Promise<{ creds: ReturnType<typeof tls13Credentials>; caPem: string }>,
  extra: string[],
  expectSuite: string,
  alpn?: string[],
) {
  const { creds, caPem } = await credentials;
  const server = await startEngineServer(creds, alpn);
  try {
    const c = await sClient(server, caPem, extra);
    await c.send("hello-one");
    await c.waitFor(/^hello-one$/m);
    // "K": a KeyUpdate with update_requested: the server must answer with its own.
    await c.send("K");
    await c.waitFor(/<<< TLS 1.3, Handshake \[length [0-9a-f]+\], KeyUpdate/);
    await c.send("after-update-requested");
    await c.waitFor(/^after-update-requested$/m);
    // s_client takes a whole stdin read as the command: wait until it has sent this KeyUpdate.
    await c.send("k");
    await c.waitFor(/(>>> TLS 1.3, Handshake \[length [0-9a-f]+\], KeyUpdate[\s\S]*){2}/);
    await c.send("after-update-not-requested");
    await c.waitFor(/^after-update-not-requested$/m);
    const { status, stderr } = await c.finish();
    assert.equal(status.code, 0, stderr);
    assert.match(c.output, new RegExp(`Cipher is ${expectSuite}`));
    assert.match(c.output, /Verification: OK/);
    await server.connections[0].done;
    const conn = server.connections[0];
    assert.equal(conn.error, null);
    assert.ok(conn.established);
    assert.ok(conn.peerClosed, "the client's close_notify was not seen");
    assert.equal(conn.session.cipherSuite, expectSuite);
    assert.equal(conn.session.serverName, "localhost");
    return { output: c.output, conn };
  } finally {
    await server.close();
  }
}

for (
  const suite of [
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
  ]
) {
  for (const group of ["X25519", "P-256"]) {
    Deno.test(`openssl s_client: ${suite} over ${group}, ECDSA P-256, KeyUpdate, close_notify`, async () => {
      await sClientSession(ecdsaCredentials(), ["-ciphersuites", suite, "-groups", group], suite);
    });
  }
}

Deno.test("openssl s_client: RSA 2048 key signs rsa_pss_rsae_sha256", async () => {
  const { output } = await sClientSession(
    opensslCredentials("rsa:2048"),
    ["-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"],
    "TLS_CHACHA20_POLY1305_SHA256",
  );
  assert.match(output, /Peer signature type: RSA-PSS/i);
});

Deno.test("openssl s_client: Ed25519 key", async () => {
  const { output } = await sClientSession(
    opensslCredentials("ed25519"),
    [],
    "TLS_CHACHA20_POLY1305_SHA256",
  );
  assert.match(output, /Peer signature type: ed25519/i);
});

Deno.test("openssl s_client: ALPN picks the server's protocol the client offers", async () => {
  const { output, conn } = await sClientSession(
    ecdsaCredentials(),
    ["-alpn", "smtp,imap"],
    "TLS_CHACHA20_POLY1305_SHA256",
    ["imap"],
  );
  assert.match(output, /ALPN protocol: imap/);
  assert.equal(conn.session.alpnProtocol, "imap");
});

Deno.test("openssl s_client: ALPN with nothing in common goes on without ALPN", async () => {
  const { output, conn } = await sClientSession(
    ecdsaCredentials(),
    ["-alpn", "h2"],
    "TLS_CHACHA20_POLY1305_SHA256",
    ["imap"],
  );
  assert.match(output, /No ALPN negotiated/);
  assert.equal(conn.session.alpnProtocol, null);
});

/** Material with an IP address in the leaf too, for clients that connect to 127.0.0.1. */
async function ipCredentials() {
  const m = await generateSelfSigned(["localhost", "127.0.0.1"]);
  return { creds: tls13Credentials(m.certPem, m.keyPem), caPem: m.caPem };
}

const BIG = 3 * 1024 * 1024;

Deno.test("Deno.connectTls (rustls): 3 MB both ways, ALPN, close_notify", async () => {
  const { creds, caPem } = await ipCredentials();
  const server = await startEngineServer(creds, ["imap"]);
  try {
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: server.port,
      caCerts: [caPem],
      alpnProtocols: ["imap"],
    });
    const info = await conn.handshake();
    assert.equal(info.alpnProtocol, "imap");
    const payload = randomBytes(BIG);
    const writing = (async () => {
      // write() may take fewer bytes than given
      for (let at = 0; at < payload.length;) {
        at += await conn.write(payload.subarray(at, at + 100_000));
      }
    })();
    const got = new Uint8Array(BIG);
    let n = 0;
    const buf = new Uint8Array(65536);
    while (n < BIG) {
      const r = await conn.read(buf);
      assert.ok(r !== null, `EOF after ${n} bytes`);
      got.set(buf.subarray(0, r), n);
      n += r;
    }
    await writing;
    assert.ok(Buffer.from(got).equals(payload));
    await conn.closeWrite();
    assert.equal(await conn.read(buf), null); // the server's close_notify
    conn.close();
    await server.connections[0].done;
    const c = server.connections[0];
    assert.equal(c.error, null);
    assert.ok(c.peerClosed);
    assert.equal(c.received, BIG);
  } finally {
    await server.close();
  }
});

Deno.test("node:tls connect: 3 MB both ways, close_notify", async () => {
  const { creds, caPem } = await ipCredentials();
  const server = await startEngineServer(creds);
  try {
    const payload = randomBytes(BIG);
    const socket = connect({
      host: "127.0.0.1",
      port: server.port,
      servername: "localhost",
      ca: caPem,
      minVersion: "TLSv1.3",
    });
    const chunks: Uint8Array[] = [];
    let n = 0;
    const ended = new Promise<void>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("data", (d: Uint8Array) => {
        chunks.push(d);
        n += d.length;
        if (n === BIG) socket.end();
      });
      socket.on("end", () => resolve());
    });
    await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()));
    assert.equal(socket.getProtocol(), "TLSv1.3");
    socket.write(payload);
    await ended;
    socket.destroy();
    assert.ok(Buffer.concat(chunks).equals(payload));
    await server.connections[0].done;
    const c = server.connections[0];
    assert.equal(c.error, null);
    assert.equal(c.received, BIG);
    assert.ok(c.peerClosed, "node:tls end() sent no close_notify");
    assert.equal(c.session.serverName, "localhost");
  } finally {
    await server.close();
  }
});

const PYTHON_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.set_alpn_protocols(["imap"])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s = ctx.wrap_socket(raw, server_hostname="localhost")
data = bytes(range(256)) * 8192
got = bytearray()
for at in range(0, len(data), 65536):
    s.sendall(data[at:at + 65536])
    while len(got) < min(at + 65536, len(data)):
        got += s.recv(65536)
assert bytes(got) == data, "echo differs"
print(s.version(), s.cipher()[0], s.selected_alpn_protocol(), len(got))
s.unwrap()
raw.close()
`;

Deno.test("python3 ssl: 2 MB both ways, ALPN, unwrap() close_notify both ways", async () => {
  const { creds, caPem } = await ecdsaCredentials();
  const server = await startEngineServer(creds, ["imap"]);
  const dir = await Deno.makeTempDir({ prefix: "tern-tls13-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, caPem);
    const out = await new Deno.Command("python3", {
      args: ["-c", PYTHON_CLIENT, String(server.port), `${dir}/ca.pem`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, decoder.decode(out.stderr));
    assert.equal(
      decoder.decode(out.stdout).trim(),
      `TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 imap ${2 * 1024 * 1024}`,
    );
    await server.connections[0].done;
    assert.ok(server.connections[0].peerClosed);
    assert.equal(server.connections[0].error, null);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Reads a client's first bytes until checkClientHello decides; then drops the connection. */
async function firstVerdict(
  creds: Tls13Credentials,
  client: (port: number) => Promise<unknown>,
): Promise<HelloCheck> {
  let resolveVerdict!: (v: HelloCheck) => void;
  const verdict = new Promise<HelloCheck>((resolve) => resolveVerdict = resolve);
  const server = createServer((sock) => {
    let head: Uint8Array = new Uint8Array(0);
    sock.on("data", (chunk: Uint8Array) => {
      head = concat([head, chunk]);
      const check = checkClientHello(head, creds);
      if (check.kind !== "more") {
        resolveVerdict(check);
        sock.destroy();
      }
    });
    sock.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const [check] = await Promise.all([verdict, client(port).catch(() => {})]);
    return check;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function opensslHello(port: number, args: string[]): Promise<void> {
  await new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
}

Deno.test("checkClientHello on real clients' first bytes", async () => {
  const { creds } = await ecdsaCredentials();
  const tls13 = await firstVerdict(creds, (port) => opensslHello(port, ["-tls1_3"]));
  assert.equal(tls13.kind, "accept");
  const tls12 = await firstVerdict(creds, (port) => opensslHello(port, ["-tls1_2"]));
  assert.deepEqual(tls12, { kind: "fallback", reason: "client does not offer TLS 1.3" });
  const p384 = await firstVerdict(creds, (port) => opensslHello(port, ["-groups", "P-384"]));
  assert.deepEqual(p384, { kind: "fallback", reason: "no key share in a supported group" });
  const deno = await firstVerdict(creds, async (port) => {
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [] });
    try {
      await conn.handshake();
    } finally {
      conn.close();
    }
  });
  assert.equal(deno.kind, "accept");
  const python = await firstVerdict(creds, async (port) => {
    await new Deno.Command("python3", {
      args: [
        "-c",
        `import socket, ssl
try:
    ssl.create_default_context().wrap_socket(socket.create_connection(("127.0.0.1", ${port})), server_hostname="localhost")
except Exception:
    pass`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
  });
  assert.equal(python.kind, "accept");
});
