// Tls13ServerSession driven in-process by the test client: the handshake's states, the alerts
// it answers broken or unexpected input with, KeyUpdate, close_notify and the limits on records
// that carry no data.

import assert from "node:assert/strict";
import { Alert, PeerAlert } from "./alert.ts";
import { concat } from "./bytes.ts";
import { ContentType, plainRecord } from "./record.ts";
import { Tls13ServerSession, type TlsOutput } from "./server.ts";
import { Group, Scheme } from "./suites.ts";
import { clientHello, handshakeRecords, type HelloOptions, TestClient } from "./test_client.ts";
import { ecdsaCredentials } from "./test_harness.ts";
import { HandshakeType } from "./messages.ts";

const { creds } = await ecdsaCredentials();
const text = (s: string) => new TextEncoder().encode(s);
const str = (parts: Uint8Array[]) => new TextDecoder().decode(concat(parts));

/** A session and client through the server's flight, before the client's Finished. */
function started(options: HelloOptions = {}, alpn?: string[]) {
  const session = new Tls13ServerSession(creds, { alpn });
  const client = new TestClient({ serverName: "mail.example", ...options });
  const out = session.receive(client.hello);
  assert.equal(out.error, null);
  const finishedRecord = client.finish(concat(out.send));
  return { session, client, out, finishedRecord };
}

function established(options: HelloOptions = {}) {
  const s = started(options);
  const out = s.session.receive(s.finishedRecord);
  assert.equal(out.error, null);
  assert.ok(out.established);
  return s;
}

/** The alert a failed call sent in plaintext (before the ServerHello). */
function plainAlert(out: TlsOutput): number {
  const last = out.send.at(-1)!;
  assert.equal(last[0], ContentType.alert);
  return last[6];
}

Deno.test("session: handshake, data pipelined with Finished, echo, close_notify", () => {
  const { session, client, finishedRecord } = started({}, ["imap"]);
  assert.equal(session.established, false);
  assert.throws(() => session.seal(text("early")), /not established/);
  const out = session.receive(concat([finishedRecord, client.data(text("a1 LOGIN"))]));
  assert.ok(out.established);
  assert.equal(str(out.data), "a1 LOGIN");
  assert.equal(session.cipherSuite, "TLS_CHACHA20_POLY1305_SHA256");
  assert.equal(session.serverName, "mail.example");
  assert.equal(session.alpnProtocol, null); // the client offered none
  const reply = client.receive(session.seal(text("* OK")));
  assert.equal(str(reply.data), "* OK");
  const big = new Uint8Array(40_000).fill(9);
  const sealed = session.seal(big);
  assert.equal(concat(client.receive(sealed).data).length, 40_000);
  const bye = session.receive(client.alert(Alert.closeNotify));
  assert.ok(bye.peerClosed);
  // After close_notify anything more is ignored.
  assert.deepEqual(session.receive(client.data(text("ignored"))).data, []);
  assert.deepEqual(client.receive(session.close()).alerts, [Alert.closeNotify]);
  assert.throws(() => session.seal(text("x")), /closed/);
});

Deno.test("session: ALPN picks the server's preference among the client's protocols", () => {
  const { session } = started({ alpn: ["smtp", "imap"] }, ["imap", "smtp"]);
  assert.equal(session.alpnProtocol, "imap");
  const other = started({ alpn: ["h2"] }, ["imap"]);
  assert.equal(other.session.alpnProtocol, null);
});

Deno.test("session: each suite the client prefers alone is used", () => {
  for (
    const [code, name] of [[0x1301, "TLS_AES_128_GCM_SHA256"], [
      0x1302,
      "TLS_AES_256_GCM_SHA384",
    ]] as const
  ) {
    const { session, client } = established({ suites: [code] });
    assert.equal(session.cipherSuite, name);
    assert.equal(str(session.receive(client.data(text("hi"))).data), "hi");
  }
});

Deno.test("session: a wrong client Finished is decrypt_error", () => {
  const session = new Tls13ServerSession(creds);
  const client = new TestClient();
  const bad = client.finish(concat(session.receive(client.hello).send), true);
  const out = session.receive(bad);
  assert.match(String(out.error), /Finished does not verify/);
  assert.deepEqual(client.receive(concat(out.send)).alerts, [Alert.decryptError]);
  // A failed session stays failed.
  assert.equal(session.receive(client.data(text("x"))).error, out.error);
  assert.throws(() => session.seal(text("x")), /failed/);
});

Deno.test("session: application data before the client's Finished is unexpected_message", () => {
  const { session, client } = started();
  const out = session.receive(
    client.handshakeWrite!.seal(ContentType.applicationData, text("too early")),
  );
  assert.match(String(out.error), /protected record type 23 unexpected/);
  assert.deepEqual(client.receive(concat(out.send)).alerts, [Alert.unexpectedMessage]);
  // Sealed with keys the server does not read with yet: bad_record_mac.
  const other = started();
  const out2 = other.session.receive(other.client.data(text("too early")));
  assert.match(String(out2.error), /did not authenticate/);
  assert.deepEqual(other.client.receive(concat(out2.send)).alerts, [Alert.badRecordMac]);
});

Deno.test("session: change_cipher_spec is sent for a session id and taken once before Finished", () => {
  const { session, client, out, finishedRecord } = started({ sessionId: new Uint8Array(32) });
  assert.deepEqual([...out.send[1]], [20, 3, 3, 0, 1, 1]);
  const ccs = plainRecord(ContentType.changeCipherSpec, Uint8Array.of(1));
  const ok = session.receive(concat([ccs, finishedRecord, client.data(text("x"))]));
  assert.ok(ok.established);
  assert.equal(str(ok.data), "x");
  // after Finished a change_cipher_spec is unexpected
  const late = session.receive(ccs);
  assert.match(String(late.error), /plaintext record type 20/);
  assert.deepEqual(client.receive(concat(late.send)).alerts, [Alert.unexpectedMessage]);

  const twice = started();
  const out2 = twice.session.receive(concat([ccs, ccs]));
  assert.match(String(out2.error), /change_cipher_spec/);
  const bad = started();
  const out3 = bad.session.receive(plainRecord(ContentType.changeCipherSpec, Uint8Array.of(2)));
  assert.match(String(out3.error), /change_cipher_spec/);
  const none = started();
  assert.equal(none.out.send[1][0], ContentType.applicationData); // no CCS without a session id
});

Deno.test("session: a second ClientHello (renegotiation) after the handshake is refused", () => {
  const { session, client } = established();
  const hello = clientHello().message;
  const out = session.receive(client.write!.seal(ContentType.handshake, hello));
  assert.match(String(out.error), /handshake message 1 unexpected/);
  assert.deepEqual(client.receive(concat(out.send)).alerts, [Alert.unexpectedMessage]);
  // and a plaintext one too
  const other = established();
  const plain = other.session.receive(handshakeRecords(hello));
  assert.match(String(plain.error), /plaintext record type 22/);
});

Deno.test("session: KeyUpdate both ways; update_requested is answered", () => {
  const { session, client } = established();
  const out = session.receive(concat([
    client.keyUpdate(true),
    client.data(text("after")),
    client.keyUpdate(false),
    client.data(text(" two updates")),
  ]));
  assert.equal(out.error, null);
  assert.equal(str(out.data), "after two updates");
  assert.equal(out.send.length, 1); // the server's own KeyUpdate
  const got = client.receive(concat([...out.send, session.seal(text("new keys"))]));
  assert.equal(str(got.data), "new keys");
});

Deno.test("session: endless KeyUpdates or empty records without data end the connection", () => {
  const { session, client } = established();
  const updates: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) updates.push(client.keyUpdate(false));
  const out = session.receive(concat(updates));
  assert.match(String(out.error), /too many records without application data/);

  const other = established();
  const empties: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) empties.push(other.client.data(new Uint8Array(0)));
  const out2 = other.session.receive(concat(empties));
  assert.match(String(out2.error), /too many records without application data/);
  assert.deepEqual(other.client.receive(concat(out2.send)).alerts, [Alert.unexpectedMessage]);

  // Data in between resets the count.
  const fine = established();
  const mixed: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    mixed.push(fine.client.data(new Uint8Array(0)), fine.client.data(text(".")));
  }
  const out3 = fine.session.receive(concat(mixed));
  assert.equal(out3.error, null);
  assert.equal(str(out3.data).length, 40);
});

Deno.test("session: a KeyUpdate with request 2 is illegal_parameter; data after it in its record is refused", () => {
  const { session, client } = established();
  const bad = client.write!.seal(
    ContentType.handshake,
    Uint8Array.of(HandshakeType.keyUpdate, 0, 0, 1, 2),
  );
  const out = session.receive(bad);
  assert.deepEqual(client.receive(concat(out.send)).alerts, [Alert.illegalParameter]);
  const other = established();
  const two = Uint8Array.of(24, 0, 0, 1, 0, 24, 0, 0, 1, 0);
  const out2 = other.session.receive(other.client.write!.seal(ContentType.handshake, two));
  assert.match(String(out2.error), /handshake data after a key change/);
});

Deno.test("session: oversized records are record_overflow", () => {
  const { session, client } = established();
  const header = Uint8Array.of(23, 3, 3, 0x41, 0x01); // 2^14 + 257
  const out = session.receive(concat([header, new Uint8Array(0x4101)]));
  assert.match(String(out.error), /record of 16641 bytes/);
  assert.deepEqual(client.receive(concat(out.send)).alerts, [Alert.recordOverflow]);
  // a plaintext handshake record over 2^14 before the ClientHello
  const fresh = new Tls13ServerSession(creds);
  const big = fresh.receive(concat([Uint8Array.of(22, 3, 1, 0x40, 0x01), new Uint8Array(0x4001)]));
  assert.equal(plainAlert(big), Alert.recordOverflow);
  // inner plaintext over 2^14 + 1 (sealed by the client without the limit)
  const other = established();
  const huge = other.client.write!.seal(ContentType.applicationData, new Uint8Array(16_385));
  const out3 = other.session.receive(huge);
  assert.match(String(out3.error), /inner plaintext too long/);
});

Deno.test("session: a client's fatal alert ends it without an answer; user_canceled does not", () => {
  const { session, client } = established();
  assert.equal(session.receive(client.alert(Alert.userCanceled)).error, null);
  const out = session.receive(client.alert(Alert.handshakeFailure));
  assert.ok(out.error instanceof PeerAlert);
  assert.deepEqual(out.send, []);
  // a plaintext alert from a client that could not read the ServerHello
  const s = started();
  const out2 = s.session.receive(plainRecord(ContentType.alert, Uint8Array.of(2, 42)));
  assert.ok(out2.error instanceof PeerAlert);
  // a malformed alert is decode_error
  const e = established();
  const out3 = e.session.receive(e.client.write!.seal(ContentType.alert, Uint8Array.of(2)));
  assert.deepEqual(e.client.receive(concat(out3.send)).alerts, [Alert.decodeError]);
});

Deno.test("session: hellos the engine does not serve get the right plaintext alert", () => {
  const cases: [HelloOptions, number][] = [
    [{ versions: null }, Alert.protocolVersion],
    [{ versions: [0x0303] }, Alert.protocolVersion],
    [{ earlyData: true }, Alert.handshakeFailure],
    [{ shareGroups: [0x0018], groups: [0x0018] }, Alert.handshakeFailure],
    [{ suites: [0x1304] }, Alert.handshakeFailure],
    [{ schemes: [Scheme.rsaPssRsaeSha256] }, Alert.handshakeFailure],
    [{ shareGroups: [Group.x25519, Group.x25519] }, Alert.illegalParameter],
  ];
  for (const [options, alert] of cases) {
    const session = new Tls13ServerSession(creds);
    const out = session.receive(new TestClient(options).hello);
    assert.ok(out.error, JSON.stringify(options));
    assert.equal(plainAlert(out), alert, JSON.stringify(options));
  }
  // garbage
  const g = new Tls13ServerSession(creds).receive(text("GET / HTTP/1.1\r\n\r\n"));
  assert.equal(plainAlert(g), Alert.decodeError);
  // a record that is not a handshake first
  const a = new Tls13ServerSession(creds).receive(plainRecord(23, text("hi")));
  assert.equal(plainAlert(a), Alert.unexpectedMessage);
  // ClientHello followed by more handshake bytes in its record
  const hello = clientHello().message;
  const extra = new Tls13ServerSession(creds).receive(
    plainRecord(ContentType.handshake, concat([hello, Uint8Array.of(20, 0, 0, 0)])),
  );
  assert.equal(plainAlert(extra), Alert.unexpectedMessage);
});

Deno.test("session: a ClientHello in 1-byte records and bytes fed one at a time work", () => {
  const session = new Tls13ServerSession(creds);
  const client = new TestClient();
  // the client's hello message, one byte per record
  const records = handshakeRecords(client.hello.subarray(5), 1);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < records.length; i++) {
    const out = session.receive(records.subarray(i, i + 1));
    assert.equal(out.error, null);
    sent.push(...out.send);
  }
  const finishedRecord = client.finish(concat(sent));
  const tail = concat([finishedRecord, client.data(text("one")), client.data(text(" byte"))]);
  const data: Uint8Array[] = [];
  let established = false;
  for (let i = 0; i < tail.length; i++) {
    const out = session.receive(tail.subarray(i, i + 1));
    assert.equal(out.error, null);
    established ||= out.established;
    data.push(...out.data);
  }
  assert.ok(established);
  assert.equal(str(data), "one byte");
});

Deno.test("session: close_notify during the handshake does not make seal() usable", () => {
  const { session, client } = started();
  const out = session.receive(client.handshakeWrite!.seal(ContentType.alert, Uint8Array.of(1, 0)));
  assert.ok(out.peerClosed);
  assert.equal(session.established, false);
  // Sealing now would send data to a client that never proved it holds the handshake keys.
  assert.throws(() => session.seal(text("* OK")), /not established/);
  // While after an established session's close_notify the server may still write.
  const done = established();
  assert.ok(done.session.receive(done.client.alert(Alert.closeNotify)).peerClosed);
  assert.equal(done.session.established, true);
  assert.equal(str(done.client.receive(done.session.seal(text("bye"))).data), "bye");
});

Deno.test("session: a resumption attempt (pre_shared_key) gets a full handshake", () => {
  // psk_key_exchange_modes [psk_dhe_ke], then an identity and binder the server cannot know
  const modes: [number, Uint8Array] = [45, Uint8Array.of(1, 1)];
  const identity = concat([Uint8Array.of(0, 4), text("tick"), Uint8Array.of(0, 0, 0, 0)]);
  const binder = concat([Uint8Array.of(32), new Uint8Array(32)]);
  const psk: [number, Uint8Array] = [
    41,
    concat([Uint8Array.of(0, 10), identity, Uint8Array.of(0, 33), binder]),
  ];
  const { session, client } = established({ extra: [modes, psk] });
  assert.equal(str(session.receive(client.data(text("full"))).data), "full");
  // pre_shared_key must be the last extension (RFC 8446 §4.2.11)
  const out = new Tls13ServerSession(creds).receive(
    new TestClient({ extra: [psk, modes] }).hello,
  );
  assert.equal(plainAlert(out), Alert.illegalParameter);
});
