// IMAP over tern's own TLS 1.3 engine (imap_tls_engine = "tern", the default): whole sessions on
// 993 and 143 (STARTTLS) with Deno's TLS client and Python's imaplib, and which engine served
// them as /metrics counts it; "node" puts every client on node:tls again.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { requireTool } from "./support/tools.ts";

const dec = new TextDecoder();

/** tern_tls_connections_total{listener, engine} once it reaches `want` (bounded wait). */
async function tlsConnections(t: TestRelay, listener: string, engine: string, want: number) {
  const deadline = Date.now() + 30_000;
  let got = NaN;
  while (Date.now() < deadline) {
    const text = await (await fetch(`http://${t.relay.addresses.metrics}/metrics`)).text();
    const line = text.split("\n").find((l) =>
      l.startsWith("tern_tls_connections_total{") && l.includes(`listener="${listener}"`) &&
      l.includes(`engine="${engine}"`)
    );
    got = line ? Number(line.split(" ").pop()) : 0;
    if (got >= want) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  return got;
}

/** LOGIN, SELECT, APPEND, FETCH and IDLE (woken by an APPEND from a second session). */
async function session(
  t: TestRelay,
  client: ImapTestClient,
  user: { address: string; password: string },
) {
  assert.ok((await client.login(user.address, user.password)).ok);
  assert.ok((await client.cmd("SELECT INBOX")).ok);
  const body = "From: <a@x.test>\r\nSubject: over tern's TLS\r\n\r\nhello\r\n";
  const tag = client.nextTag();
  await client.send(`${tag} APPEND INBOX {${body.length}}\r\n`);
  assert.match(await client.readResponse(), /^\+ /);
  await client.send(body + "\r\n");
  assert.ok((await client.collect(tag)).ok);
  const fetched = await client.cmd("FETCH 1 BODY.PEEK[]");
  assert.ok(fetched.ok);
  assert.ok(fetched.untagged.some((l) => l.includes("Subject: over tern's TLS")));
  const idle = client.nextTag();
  await client.send(`${idle} IDLE\r\n`);
  assert.match(await client.readResponse(), /^\+ /);
  const { client: other } = await ImapTestClient.connect(t.addr("imaps"), {
    tls: true,
    caPem: t.caPem,
  });
  assert.ok((await other.login(user.address, user.password)).ok);
  const tag2 = other.nextTag();
  await other.send(`${tag2} APPEND INBOX {${body.length}}\r\n`);
  assert.match(await other.readResponse(), /^\+ /);
  await other.send(body + "\r\n");
  assert.ok((await other.collect(tag2)).ok);
  await other.cmd("LOGOUT");
  other.close();
  let line = await client.readResponse();
  while (!/^\* \d+ EXISTS$/.test(line)) line = await client.readResponse();
  assert.equal(line, "* 2 EXISTS");
  await client.send("DONE\r\n");
  assert.ok((await client.collect(idle)).ok);
  await client.cmd("LOGOUT");
  client.close();
}

Deno.test("IMAPS and STARTTLS sessions over tern's TLS engine (Deno client): login, select, append, fetch, idle", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const { client, greeting } = await ImapTestClient.connect(t.addr("imaps"), {
      tls: true,
      caPem: t.caPem,
    });
    assert.match(greeting, /^\* OK/);
    await session(t, client, user);
    // Two sessions on 993 (the second one woke the IDLE), both on tern's engine.
    assert.equal(await tlsConnections(t, "imaps", "tern", 2), 2);

    const plain = await ImapTestClient.connect(t.addr("imap"));
    await plain.client.startTls(t.caPem);
    assert.ok((await plain.client.login(user.address, user.password)).ok);
    assert.ok((await plain.client.cmd("SELECT INBOX")).ok);
    await plain.client.cmd("LOGOUT");
    plain.client.close();
    assert.equal(await tlsConnections(t, "imap", "tern", 1), 1);
    assert.equal(await tlsConnections(t, "imaps", "node", 0), 0);
  }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
});

Deno.test('imap_tls_engine = "node": IMAPS clients get node:tls', async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    assert.ok((await client.login(user.address, user.password)).ok);
    await client.cmd("LOGOUT");
    client.close();
    assert.equal(await tlsConnections(t, "imaps", "node", 1), 1);
    assert.equal(await tlsConnections(t, "imaps", "tern", 0), 0);
  }, { overrides: { "listen.metrics": "127.0.0.1:0", imap_tls_engine: "node" } });
});

// imaplib of Python 3.11 has no idle(): IDLE is sent by hand, woken by an APPEND from a second
// connection.
const IMAPLIB = `
import imaplib, json, ssl, sys
cfg = json.loads(sys.stdin.readline())
ctx = ssl.create_default_context(cafile=cfg["ca"])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
out = {}
m = imaplib.IMAP4_SSL("127.0.0.1", cfg["port"], ssl_context=ctx)
out["version"] = m.sock.version()
out["login"] = m.login(cfg["user"], cfg["password"])[0]
msg = b"From: a@example.org\\r\\nSubject: imaplib over tern TLS\\r\\n\\r\\nbody\\r\\n"
out["append"] = m.append("INBOX", None, None, msg)[0]
typ, data = m.select("INBOX")
out["exists"] = int(data[0])
typ, data = m.fetch("1", "(RFC822)")
out["body_ok"] = data[0][1] == msg
m.send(b"I1 IDLE\\r\\n")
out["idle"] = m.readline().decode().strip()
m2 = imaplib.IMAP4_SSL("127.0.0.1", cfg["port"], ssl_context=ctx)
m2.login(cfg["user"], cfg["password"])
m2.append("INBOX", None, None, msg)
m2.logout()
line = m.readline().decode().strip()
while not line.endswith("EXISTS"):
    line = m.readline().decode().strip()
out["woken"] = line
m.send(b"DONE\\r\\n")
line = m.readline().decode().strip()
while not line.startswith("I1 "):
    line = m.readline().decode().strip()
out["done"] = line.split(" ")[1]
m.logout()
print(json.dumps(out))
`;

const python3Need = requireTool("python3");
Deno.test(
  python3Need.title(
    "Python imaplib IMAP4_SSL over tern's TLS engine: login, append, select, fetch, idle",
  ),
  { ignore: python3Need.ignore },
  async () => {
    await withRelay(async (t) => {
      const user = await createAccount(t, "alice0001");
      const dir = await Deno.makeTempDir({ prefix: "tern-imap-tls-" });
      try {
        await Deno.writeTextFile(`${dir}/ca.pem`, t.caPem);
        const child = new Deno.Command("python3", {
          args: ["-c", IMAPLIB],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(
          JSON.stringify({
            ca: `${dir}/ca.pem`,
            port: t.addr("imaps").port,
            user: user.address,
            password: user.password,
          }) + "\n",
        ));
        await w.close();
        const out = await child.output();
        assert.equal(out.code, 0, dec.decode(out.stderr));
        assert.deepEqual(JSON.parse(dec.decode(out.stdout)), {
          version: "TLSv1.3",
          login: "OK",
          append: "OK",
          exists: 1,
          body_ok: true,
          idle: "+ idling",
          woken: "* 2 EXISTS",
          done: "OK",
        });
        assert.equal(await tlsConnections(t, "imaps", "tern", 2), 2);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
  },
);
