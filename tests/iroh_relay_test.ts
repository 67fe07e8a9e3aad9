// The embedded iroh relay in a running tern: the METADATA value names exactly the relay that is
// served (plain HTTP with the self-signed certificate, HTTPS with a CA-issued one, another relay,
// or none), iroh_enabled switches it at run time, and the admin status and /metrics count it.

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import type { TestRelay } from "./support/relay.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";
import { RelayTestClient } from "../src/iroh/test_client.ts";
import { FrameType } from "../src/iroh/frames.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function irohMetadata(t: TestRelay, caPem = t.caPem): Promise<string | null> {
  const user = await createAccount(t, `u${crypto.randomUUID().slice(0, 8)}`);
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem });
  try {
    await client.login(user.address, user.password);
    const r = await client.cmd('GETMETADATA "" /shared/vendor/deltachat/irohrelay');
    const line = r.untagged[0] ?? "";
    const value = metadataValue(line, "/shared/vendor/deltachat/irohrelay");
    assert.ok(value !== undefined, line);
    return value;
  } finally {
    client.close();
  }
}

/** Connects a test client to a relay URL the way an iroh client reads it. */
function connectTo(url: string, o: { protocol?: "relay" | "websocket"; caCerts?: string[] } = {}) {
  const u = new URL(url);
  return RelayTestClient.connect({
    hostname: u.hostname,
    port: Number(u.port || (u.protocol === "https:" ? 443 : 80)),
    caCerts: u.protocol === "https:" ? o.caCerts ?? [] : undefined,
    protocol: o.protocol,
  });
}

async function exchange(a: RelayTestClient, b: RelayTestClient, text: string) {
  await b.ready();
  await a.send(b.publicKey, enc.encode(text));
  const got = await b.receive();
  assert.equal(dec.decode(got.packet), text);
}

/** A request to port 80 (redirects not followed). */
function plain(t: TestRelay, path: string, init?: RequestInit) {
  const { hostname, port } = t.addr("http");
  return fetch(`http://${hostname}:${port}${path}`, { ...init, redirect: "manual" });
}

/** A request to the HTTPS listener, trusting the relay's own CA. */
async function secure(t: TestRelay, path: string, init?: RequestInit) {
  const { hostname, port } = t.addr("https");
  using client = Deno.createHttpClient({ caCerts: [t.caPem] });
  return await fetch(`https://${hostname}:${port}${path}`, { ...init, client });
}

/** Port 80 serves nothing of the relay then: everything is redirected to HTTPS. */
async function assertRedirected(t: TestRelay, path: string) {
  const r = await plain(t, path);
  assert.equal(r.status, 301, `${path} on port 80`);
  await r.body?.cancel();
}

Deno.test("METADATA names the embedded relay where it is served; iroh_enabled switches both", async () => {
  await withRelay(async (t) => {
    const url = await irohMetadata(t);
    // The certificate is tern's own, which iroh clients refuse: the relay is offered over HTTP.
    assert.equal(url, `http://127.0.0.1:${t.addr("http").port}`);
    const a = await connectTo(url!);
    const b = await connectTo(url!, { protocol: "websocket" });
    await exchange(a, b, "through tern");
    const ping = await plain(t, "/ping");
    assert.equal(ping.status, 200);
    assert.equal(ping.headers.get("access-control-allow-origin"), "*");
    await ping.body?.cancel();
    const portal = await plain(t, "/generate_204", {
      headers: { "x-tailscale-challenge": "ts_127.0.0.1" },
    });
    assert.equal(portal.status, 204);
    assert.equal(portal.headers.get("x-tailscale-response"), "response ts_127.0.0.1");
    await portal.body?.cancel();

    const token = t.relay.adminToken;
    const s = await (await secure(t, "/api/admin/status", {
      headers: { authorization: `Bearer ${token}` },
    })).json();
    assert.deepEqual(s.iroh, {
      url,
      clients: 2,
      relayed_packets: 1,
      relayed_bytes: 12,
      dropped: 0,
    });

    await t.relay.services.settings.set("iroh_enabled", "false");
    // Connected clients are told and closed at once.
    for (const x of [a, b]) {
      const frames = await x.untilClosed();
      assert.equal(frames.at(-1)?.type, FrameType.Health);
      assert.equal(dec.decode(frames.at(-1)!.body), "relay disabled");
    }
    assert.equal(await irohMetadata(t), null);
    await assert.rejects(connectTo(url!), /301 Moved Permanently/);
    await assertRedirected(t, "/ping");
    const off = await secure(t, "/ping");
    assert.equal(off.status, 404);
    await off.body?.cancel();
    await t.relay.services.settings.set("iroh_enabled", "true");
    assert.equal(await irohMetadata(t), url);
    const c = await connectTo(url!);
    const d = await connectTo(url!, { protocol: "websocket" });
    await exchange(c, d, "back on");
    for (const x of [a, b, c, d]) await x.close();
  }, { overrides: { turn_port: 0, "listen.https": "127.0.0.1:0" } });
});

Deno.test("iroh_relay naming another relay: offered as it is, nothing served here", async () => {
  await withRelay(async (t) => {
    assert.equal(await irohMetadata(t), "https://relay.example.net");
    const { hostname, port } = t.addr("http");
    await assert.rejects(RelayTestClient.connect({ hostname, port }), /301 Moved Permanently/);
    await assertRedirected(t, "/ping");
    await t.relay.services.settings.set("iroh_enabled", "false");
    assert.equal(await irohMetadata(t), null);
  }, { overrides: { turn_port: 0, iroh_relay: "https://relay.example.net" } });
});

Deno.test("iroh_relay empty: no relay offered or served", async () => {
  await withRelay(async (t) => {
    assert.equal(await irohMetadata(t), null);
    const { hostname, port } = t.addr("http");
    await assert.rejects(RelayTestClient.connect({ hostname, port }), /301 Moved Permanently/);
    await assertRedirected(t, "/generate_204");
  }, { overrides: { turn_port: 0, iroh_relay: "" } });
});

async function hasOpenssl(): Promise<boolean> {
  try {
    const r = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

/** A CA and a leaf for 127.0.0.1 signed by it, as an operator's certificate files. */
async function caIssuedCertificate(dir: string) {
  const run = async (args: string[]) => {
    const r = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!r.success) throw new Error(`openssl ${args[0]}: ${dec.decode(r.stderr)}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Test Root CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  ]);
  await run(["req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]);
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  await run([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    "2",
    "-extfile",
    "leaf.ext",
  ]);
  return {
    ca: await Deno.readTextFile(`${dir}/ca.pem`),
    cert: `${dir}/leaf.pem`,
    key: `${dir}/leaf.key`,
  };
}

const OPENSSL = await hasOpenssl();

Deno.test({
  name: "with a CA-issued certificate the relay is offered and served over HTTPS" +
    (OPENSSL ? "" : " (ignored: needs openssl)"),
  ignore: !OPENSSL,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tern-iroh-ca-" });
    try {
      const cert = await caIssuedCertificate(dir);
      await withRelay(async (t) => {
        const url = await irohMetadata(t, cert.ca);
        const https = t.relay.addresses.https!;
        assert.equal(url, `https://127.0.0.1:${https.slice(https.lastIndexOf(":") + 1)}`);
        const a = await connectTo(url!, { caCerts: [cert.ca] });
        const b = await connectTo(url!, { caCerts: [cert.ca], protocol: "websocket" });
        await exchange(a, b, "over TLS");
        await exchange(b, a, "and back");
        // Other HTTPS traffic still reaches the site, through the same listener.
        const client = Deno.createHttpClient({ caCerts: [cert.ca] });
        const page = await fetch(`${url}/ping`, { client });
        assert.equal(page.status, 200);
        await page.body?.cancel();
        const site = await fetch(`${url}/`, { client });
        assert.equal(site.status, 200);
        await site.body?.cancel();
        client.close();
        await a.close();
        await b.close();
      }, {
        overrides: {
          turn_port: 0,
          "listen.https": "127.0.0.1:0",
          tls_cert: cert.cert,
          tls_key: cert.key,
        },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
