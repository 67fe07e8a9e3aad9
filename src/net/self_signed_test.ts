import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import { requireTool } from "../../tests/support/tools.ts";
import { generateSelfSigned, ipBytes } from "./self_signed.ts";

const openssl = requireTool("openssl");

function pems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

Deno.test("self-signed: a CA and a leaf that node:crypto reads, chained and signed", async () => {
  const m = await generateSelfSigned(["chat.example.org", "127.0.0.1", "::1", "[2001:db8::7]"]);
  const [leafPem, caPemInChain] = pems(m.certPem);
  assert.equal(pems(m.caPem)[0], caPemInChain);
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(m.caPem);
  assert.equal(ca.ca, true);
  assert.equal(leaf.ca, false);
  assert.ok(ca.verify(ca.publicKey), "the CA signs itself");
  assert.ok(leaf.verify(ca.publicKey), "the CA signs the leaf");
  assert.ok(leaf.checkIssued(ca));
  assert.equal(leaf.subject, "CN=chat.example.org");
  assert.equal(leaf.issuer, "CN=tern local CA chat.example.org");
  assert.equal(ca.subject, leaf.issuer);
  assert.equal(
    leaf.subjectAltName,
    "DNS:chat.example.org, IP Address:127.0.0.1, IP Address:::1, IP Address:2001:db8::7",
  );
  assert.deepEqual(leaf.keyUsage, ["DigitalSignature"]);
  assert.ok(leaf.checkHost("chat.example.org"));
  assert.ok(leaf.checkIP("127.0.0.1"));
  // 36500 days: the end date is past 2049, written as GeneralizedTime
  assert.ok(new Date(leaf.validTo).getUTCFullYear() > 2100);
  assert.ok(new Date(leaf.validFrom).getTime() < Date.now());
  assert.equal(leaf.serialNumber.length, 32);
  assert.notEqual(leaf.serialNumber, ca.serialNumber);
  // the key belongs to the leaf
  const key = await crypto.subtle.importKey(
    "pkcs8",
    Uint8Array.from(
      atob(m.keyPem.replace(/-----[^-]+-----|\s/g, "")),
      (c) => c.charCodeAt(0),
    ),
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const pub = leaf.publicKey.export({ format: "jwk" });
  assert.equal(jwk.x, pub.x);
  assert.equal(jwk.y, pub.y);
});

Deno.test("self-signed: a short life is written as UTCTime", async () => {
  const m = await generateSelfSigned(["localhost"], 90);
  const leaf = new X509Certificate(pems(m.certPem)[0]);
  const days = (Date.parse(leaf.validTo) - Date.now()) / 86400_000;
  assert.ok(days > 89 && days < 91, `${days} days`);
  assert.equal(leaf.subjectAltName, "DNS:localhost");
});

Deno.test("self-signed: a TLS client that trusts the CA accepts the leaf", async () => {
  const m = await generateSelfSigned(["localhost", "127.0.0.1"]);
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: m.certPem,
    key: m.keyPem,
  });
  const served = (async () => {
    for (let i = 0; i < 2; i++) {
      const conn = await listener.accept();
      await conn.write(new TextEncoder().encode("hello"));
      conn.close();
    }
  })();
  // by name and by address, as Delta Chat reaches an IP relay
  for (const hostname of ["localhost", "127.0.0.1"]) {
    const client = await Deno.connectTls({
      hostname,
      port: listener.addr.port,
      caCerts: [m.caPem],
    });
    const buf = new Uint8Array(5);
    let n = 0;
    while (n < 5) {
      const got = await client.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    assert.equal(new TextDecoder().decode(buf), "hello", hostname);
    client.close();
  }
  await served;
  listener.close();
});

Deno.test({
  name: openssl.title(
    "self-signed: openssl verifies the chain for server use and reads every field",
  ),
  ignore: openssl.ignore,
  async fn() {
    const m = await generateSelfSigned(["relay.test", "192.0.2.7"]);
    const dir = await Deno.makeTempDir({ prefix: "tern-selfsigned-" });
    try {
      await Deno.writeTextFile(`${dir}/ca.pem`, m.caPem);
      await Deno.writeTextFile(`${dir}/leaf.pem`, pems(m.certPem)[0]);
      const run = async (args: string[]) => {
        const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
          .output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        assert.ok(out.success, `openssl ${args.join(" ")}: ${text}`);
        return text;
      };
      const verified = await run([
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "relay.test",
        "-verify_ip",
        "192.0.2.7",
        "-CAfile",
        `${dir}/ca.pem`,
        `${dir}/leaf.pem`,
      ]);
      assert.match(verified, /leaf\.pem: OK/);
      const text = await run(["x509", "-in", `${dir}/leaf.pem`, "-noout", "-text"]);
      assert.match(text, /Version: 3/);
      assert.match(text, /ecdsa-with-SHA256/);
      assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
      assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature/);
      assert.match(text, /TLS Web Server Authentication/);
      assert.match(text, /DNS:relay\.test, IP Address:192\.0\.2\.7/);
      assert.match(text, /X509v3 Authority Key Identifier/);
      const ca = await run(["x509", "-in", `${dir}/ca.pem`, "-noout", "-text"]);
      assert.match(ca, /CA:TRUE, pathlen:0/);
      assert.match(ca, /Certificate Sign, CRL Sign/);
      assert.match(ca, /X509v3 Subject Key Identifier/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("self-signed: IP addresses in iPAddress form", () => {
  assert.deepEqual([...ipBytes("192.0.2.7")], [192, 0, 2, 7]);
  assert.deepEqual([...ipBytes("::1")], [...Array(15).fill(0), 1]);
  assert.deepEqual(
    [...ipBytes("2001:db8::ff00:42:8329")],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x42, 0x83, 0x29],
  );
  assert.deepEqual([...ipBytes("::ffff:192.0.2.1")], [
    ...Array(10).fill(0),
    255,
    255,
    192,
    0,
    2,
    1,
  ]);
  for (
    const bad of [
      "1.2.3",
      "256.1.1.1",
      "1::2::3",
      "12345::",
      "a:b:c:d:e:f:1:2:3",
      // Once read with Number(): octal-looking, hex and exponent octets, a "::" for no group.
      "010.0.0.1",
      "0x10.0.0.1",
      "1e2.0.0.1",
      "1:2:3:4::5:6:7:8",
    ]
  ) {
    assert.throws(() => ipBytes(bad), /not an IP address/, bad);
  }
});
