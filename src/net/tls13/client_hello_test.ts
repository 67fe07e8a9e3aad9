// checkClientHello: which first bytes tern's engine takes ("accept"), waits on ("more") or
// leaves to node:tls ("fallback").

import assert from "node:assert/strict";
import { checkClientHello } from "./client_hello.ts";
import { concat } from "./bytes.ts";
import { plainRecord } from "./record.ts";
import { Group, Scheme } from "./suites.ts";
import { clientHello, handshakeRecords, type HelloOptions, TestClient } from "./test_client.ts";
import { ecdsaCredentials, opensslCredentials } from "./test_harness.ts";
import { RFC8448 } from "./rfc8448_data.ts";

const { creds } = await ecdsaCredentials();
const kind = (head: Uint8Array, c = creds) => checkClientHello(head, c).kind;
const hello = (options: HelloOptions = {}) => new TestClient(options).hello;

Deno.test("checkClientHello: a TLS 1.3 hello the engine serves is accepted", () => {
  assert.equal(kind(hello()), "accept");
  // RFC 8448's hello (x25519 share, ECDSA among its schemes) with a TLS 1.0 record version
  const rfc = concat([Uint8Array.of(22, 3, 1, 0, RFC8448.clientHello.length), RFC8448.clientHello]);
  assert.equal(kind(rfc), "accept");
  // a P-256 share only is served too
  const p256 = clientHello({ shareGroups: [Group.secp256r1], groups: [Group.secp256r1] });
  assert.equal(kind(handshakeRecords(p256.message)), "accept");
});

Deno.test("checkClientHello: TLS 1.2-only hellos fall back", () => {
  const check = checkClientHello(hello({ versions: null }), creds);
  assert.deepEqual(check, { kind: "fallback", reason: "client does not offer TLS 1.3" });
  assert.equal(kind(hello({ versions: [0x0303, 0x0302] })), "fallback");
});

Deno.test("checkClientHello: garbage and other protocols fall back at once", () => {
  const http = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(kind(http), "fallback");
  assert.equal(kind(http.subarray(0, 1)), "fallback");
  assert.equal(kind(Uint8Array.of(0x16, 0x02)), "fallback"); // not version 3
  assert.equal(kind(plainRecord(23, new Uint8Array(10))), "fallback");
  assert.equal(kind(Uint8Array.of(22, 3, 1, 0, 0)), "fallback"); // empty record
  // a handshake record whose message is not a ClientHello
  assert.equal(kind(plainRecord(22, Uint8Array.of(2, 0, 0, 0))), "fallback");
  // a whole ClientHello that does not parse
  const broken = plainRecord(22, Uint8Array.of(1, 0, 0, 3, 3, 3, 0));
  assert.equal(kind(broken), "fallback");
});

Deno.test("checkClientHello: a hello in 1-byte pieces is 'more' until whole, then accepted", () => {
  const bytes = hello();
  for (let n = 0; n < bytes.length; n++) assert.equal(kind(bytes.subarray(0, n)), "more", `${n}`);
  assert.equal(kind(bytes), "accept");
  // and one split into 16 records
  const { message } = clientHello();
  const records = handshakeRecords(message, Math.ceil(message.length / 16));
  assert.equal(kind(records.subarray(0, records.length - 1)), "more");
  assert.equal(kind(records), "accept");
});

Deno.test("checkClientHello: a hello in more than 16 records falls back", () => {
  // Each call walks the records from the start: thousands of 1-byte records trickled in would
  // cost quadratic time. node:tls takes such a client.
  const { message } = clientHello();
  const records = handshakeRecords(message, 1);
  assert.deepEqual(checkClientHello(records.subarray(0, 6 * 17), creds), {
    kind: "fallback",
    reason: "ClientHello in too many records",
  });
  assert.equal(kind(records.subarray(0, 6 * 16)), "more");
});

Deno.test("checkClientHello: hellos that need what the engine lacks fall back", () => {
  // only a secp384r1 share: HelloRetryRequest would be needed
  assert.equal(kind(hello({ shareGroups: [0x0018], groups: [0x0018, Group.x25519] })), "fallback");
  assert.equal(kind(hello({ earlyData: true })), "fallback");
  assert.equal(kind(hello({ suites: [0x1304, 0x1305] })), "fallback");
  assert.equal(kind(hello({ schemes: [Scheme.rsaPssRsaeSha256] })), "fallback"); // ECDSA key
});

Deno.test("checkClientHello: the key decides which signature schemes count", async () => {
  const rsa = (await opensslCredentials("rsa:2048")).creds;
  assert.equal(kind(hello({ schemes: [Scheme.rsaPssRsaeSha384] }), rsa), "accept");
  assert.equal(kind(hello({ schemes: [Scheme.ecdsaSecp256r1Sha256] }), rsa), "fallback");
  // RSA PKCS#1 v1.5 schemes (0x0401) are not TLS 1.3 signatures
  assert.equal(kind(hello({ schemes: [0x0401] }), rsa), "fallback");
});

Deno.test("checkClientHello: an oversized hello falls back as soon as its length is seen", () => {
  const big = hello({ padding: 70_000 });
  assert.equal(kind(big.subarray(0, 9)), "fallback");
  // a hello under the limit but padded still works
  assert.equal(kind(hello({ padding: 20_000 })), "accept");
});
