import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Attr,
  bytesToIp,
  checkFingerprint,
  checkIntegrity,
  Class,
  crc32,
  decodeAddress,
  decodeChannelData,
  decodeErrorCode,
  decodeStun,
  decodeXorAddress,
  encodeAddress,
  encodeChannelData,
  encodeErrorCode,
  encodeStun,
  encodeXorAddress,
  getAttr,
  ipToBytes,
  messageType,
  Method,
  normalizeIp,
  text,
  unknownRequired,
  utf8,
} from "./stun.ts";
import { longTermKey } from "./credentials.ts";

/** Hex as RFC 5769 prints it (spaces, line breaks) to bytes. */
function hex(s: string): Uint8Array {
  const d = s.replace(/[^0-9a-fA-F]/g, "");
  return Uint8Array.from(
    { length: d.length / 2 },
    (_, i) => parseInt(d.slice(2 * i, 2 * i + 2), 16),
  );
}

// RFC 5769 section 2: the test vectors (short-term password for 2.1-2.3).
const PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt";
const TID = hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae");

const SAMPLE_REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);

const SAMPLE_IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);

const SAMPLE_IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);

const LONG_TERM_REQUEST = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);

Deno.test("RFC 5769 2.1: sample request decodes, integrity and fingerprint check", () => {
  const m = decodeStun(SAMPLE_REQUEST)!;
  assert.ok(m);
  assert.deepEqual([m.method, m.cls], [Method.Binding, Class.Request]);
  assert.deepEqual(m.transactionId, TID);
  assert.deepEqual(text(getAttr(m, Attr.Software)), "STUN test client");
  assert.deepEqual(text(getAttr(m, Attr.Username)), "evtj:h6vY");
  assert.deepEqual(getAttr(m, Attr.Priority), hex("6e0001ff"));
  assert.deepEqual(getAttr(m, Attr.IceControlled), hex("932ff9b151263b36"));
  assert.ok(checkIntegrity(m, PASSWORD));
  assert.ok(!checkIntegrity(m, "wrong"));
  assert.deepEqual(checkFingerprint(m), "valid");
  assert.deepEqual(unknownRequired(m, new Set([Attr.Username, Attr.MessageIntegrity])), [
    Attr.Priority,
  ]);
});

Deno.test("RFC 5769 2.2: IPv4 response gives 192.0.2.1:32853", () => {
  const m = decodeStun(SAMPLE_IPV4_RESPONSE)!;
  assert.deepEqual([m.method, m.cls], [Method.Binding, Class.Success]);
  assert.deepEqual(text(getAttr(m, Attr.Software)), "test vector");
  const mapped = { family: 4 as const, ip: "192.0.2.1", port: 32853 };
  assert.deepEqual(decodeXorAddress(getAttr(m, Attr.XorMappedAddress), m.transactionId), mapped);
  assert.deepEqual(encodeXorAddress(mapped, TID), getAttr(m, Attr.XorMappedAddress));
  assert.ok(checkIntegrity(m, PASSWORD));
  assert.deepEqual(checkFingerprint(m), "valid");
});

Deno.test("RFC 5769 2.3: IPv6 response gives [2001:db8:1234:5678:11:2233:4455:6677]:32853", () => {
  const m = decodeStun(SAMPLE_IPV6_RESPONSE)!;
  const mapped = { family: 6 as const, ip: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 };
  assert.deepEqual(decodeXorAddress(getAttr(m, Attr.XorMappedAddress), m.transactionId), mapped);
  assert.deepEqual(encodeXorAddress(mapped, TID), getAttr(m, Attr.XorMappedAddress));
  assert.ok(checkIntegrity(m, PASSWORD));
  assert.deepEqual(checkFingerprint(m), "valid");
});

Deno.test("RFC 5769 2.4: long-term credentials, and re-encoding gives the same bytes", () => {
  const m = decodeStun(LONG_TERM_REQUEST)!;
  const username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9";
  assert.deepEqual(text(getAttr(m, Attr.Username)), username);
  assert.deepEqual(text(getAttr(m, Attr.Nonce)), "f//499k954d6OL34oL9FSTvy64sA");
  assert.deepEqual(text(getAttr(m, Attr.Realm)), "example.org");
  assert.deepEqual(checkFingerprint(m), "absent");
  // "TheMatrIX" is the SASLprep'd form of the RFC's password.
  const key = longTermKey(username, "example.org", "TheMatrIX");
  assert.ok(checkIntegrity(m, key));
  assert.ok(!checkIntegrity(m, longTermKey(username, "example.org", "thematrix")));
  const again = encodeStun({
    method: Method.Binding,
    cls: Class.Request,
    transactionId: m.transactionId,
    attributes: [
      { type: Attr.Username, value: utf8(username) },
      { type: Attr.Nonce, value: utf8("f//499k954d6OL34oL9FSTvy64sA") },
      { type: Attr.Realm, value: utf8("example.org") },
    ],
  }, { integrityKey: key });
  assert.deepEqual(again, LONG_TERM_REQUEST);
});

Deno.test("message type packs method and class bits as RFC 5389 figure 3", () => {
  assert.deepEqual(messageType(Method.Binding, Class.Request), 0x0001);
  assert.deepEqual(messageType(Method.Binding, Class.Success), 0x0101);
  assert.deepEqual(messageType(Method.Allocate, Class.Error), 0x0113);
  assert.deepEqual(messageType(Method.Send, Class.Indication), 0x0016);
  assert.deepEqual(messageType(Method.Data, Class.Indication), 0x0017);
  assert.deepEqual(messageType(Method.ChannelBind, Class.Success), 0x0109);
  assert.deepEqual(messageType(0xfff, Class.Error), 0x3fff);
  for (const method of [1, 3, 4, 6, 7, 8, 9, 0x7f, 0x80, 0xabc, 0xfff]) {
    for (const cls of [0, 1, 2, 3]) {
      const bytes = encodeStun({
        method,
        cls,
        transactionId: new Uint8Array(12),
        attributes: [],
      });
      const m = decodeStun(bytes)!;
      assert.deepEqual([m.method, m.cls], [method, cls]);
    }
  }
});

Deno.test("encode pads attributes, appends integrity and fingerprint that verify", () => {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  const key = longTermKey("1700000000", "example.org", "pw");
  const bytes = encodeStun({
    method: Method.Allocate,
    cls: Class.Request,
    transactionId: tid,
    attributes: [
      { type: Attr.Data, value: utf8("abcde") },
      { type: Attr.Username, value: utf8("x") },
    ],
  }, { integrityKey: key, fingerprint: true });
  assert.deepEqual(bytes.length, 20 + 12 + 8 + 24 + 8);
  assert.deepEqual(bytes.subarray(29, 32), new Uint8Array(3)); // zero padding after "abcde"
  const m = decodeStun(bytes)!;
  assert.deepEqual(text(getAttr(m, Attr.Data)), "abcde");
  assert.deepEqual(text(getAttr(m, Attr.Username)), "x");
  assert.ok(checkIntegrity(m, key));
  assert.deepEqual(checkFingerprint(m), "valid");
  for (let i = 20; i < bytes.length - 8; i++) {
    const flipped = bytes.slice();
    flipped[i] ^= 0x01;
    const f = decodeStun(flipped);
    if (f) assert.ok(!checkIntegrity(f, key) || checkFingerprint(f) === "invalid");
  }
  assert.throws(() =>
    encodeStun({ method: 1, cls: 0, transactionId: new Uint8Array(11), attributes: [] })
  );
});

Deno.test("attributes after MESSAGE-INTEGRITY (but FINGERPRINT) and after FINGERPRINT are ignored", () => {
  const key = "k";
  const signed = encodeStun({
    method: Method.Refresh,
    cls: Class.Request,
    transactionId: new Uint8Array(12),
    attributes: [{ type: Attr.Lifetime, value: new Uint8Array(4) }],
  }, { integrityKey: key });
  const extra = hex("0013 0004 01020304");
  const tampered = new Uint8Array([...signed, ...extra]);
  new DataView(tampered.buffer).setUint16(2, tampered.length - 20);
  const m = decodeStun(tampered)!;
  assert.deepEqual(getAttr(m, Attr.Data), undefined);
  assert.ok(checkIntegrity(m, key));
  const fp = encodeStun({
    method: Method.Binding,
    cls: Class.Request,
    transactionId: new Uint8Array(12),
    attributes: [],
  }, { fingerprint: true });
  const after = new Uint8Array([...fp, ...extra]);
  new DataView(after.buffer).setUint16(2, after.length - 20);
  const f = decodeStun(after)!;
  assert.deepEqual(f.attributes.map((a) => a.type), [Attr.Fingerprint]);
  assert.equal(checkFingerprint(f), "valid");
});

Deno.test("malformed messages decode to null", () => {
  const good = encodeStun({
    method: Method.Binding,
    cls: Class.Request,
    transactionId: new Uint8Array(12),
    attributes: [{ type: Attr.Software, value: utf8("abc") }],
  });
  const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
    const b = good.slice();
    f(b, new DataView(b.buffer));
    return b;
  };
  assert.ok(decodeStun(good));
  assert.deepEqual(decodeStun(good.subarray(0, 19)), null);
  assert.deepEqual(decodeStun(good.subarray(0, good.length - 4)), null);
  assert.deepEqual(decodeStun(mutate((b) => b[0] |= 0x80)), null); // top bits
  assert.deepEqual(decodeStun(mutate((b) => b[4] ^= 1)), null); // cookie
  assert.deepEqual(decodeStun(mutate((_, dv) => dv.setUint16(2, 6))), null); // not a multiple of 4
  assert.deepEqual(decodeStun(mutate((_, dv) => dv.setUint16(22, 9))), null); // attribute overruns
  assert.deepEqual(decodeStun(mutate((_, dv) => dv.setUint16(2, 4))), null); // cut in an attribute
  assert.deepEqual(decodeStun(new Uint8Array(0)), null);
  const badMi = encodeStun({
    method: 1,
    cls: 0,
    transactionId: new Uint8Array(12),
    attributes: [{ type: Attr.MessageIntegrity, value: new Uint8Array(8) }],
  });
  assert.deepEqual(decodeStun(badMi), null);
  // A fingerprint that does not match marks the message as not STUN for the server.
  const fp = encodeStun({
    method: 1,
    cls: 0,
    transactionId: new Uint8Array(12),
    attributes: [],
  }, { fingerprint: true });
  fp[fp.length - 1] ^= 1;
  assert.deepEqual(checkFingerprint(decodeStun(fp)!), "invalid");
});

Deno.test("CRC-32 is the ISO-HDLC one", () => {
  assert.deepEqual(crc32(utf8("123456789")), 0xcbf43926);
  assert.deepEqual(crc32(new Uint8Array(0)), 0);
});

Deno.test("IP text forms: parse, RFC 5952 output, IPv4-mapped normalization", () => {
  const cases: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["2001:0DB8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"],
    ["::", "::"],
    ["::1", "::1"],
    ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
    ["fe80::1%eth0", "fe80::1"],
    ["::ffff:7f00:1", "::ffff:127.0.0.1"],
    ["[2001:db8::5]", "2001:db8::5"],
  ];
  for (const [input, want] of cases) assert.deepEqual(bytesToIp(ipToBytes(input)!), want, input);
  for (
    const bad of [
      "",
      "1.2.3",
      "256.1.1.1",
      "1::2::3",
      "12345::",
      "a.b.c.d",
      "1:2:3:4:5:6:7:8:9",
      // Once taken as decimal: an octal-looking octet (8.0.0.1 to inet_aton).
      "010.0.0.1",
      "::ffff:010.0.0.1",
      "1.2.3.4%eth0",
    ]
  ) {
    assert.deepEqual(ipToBytes(bad), null, bad);
  }
  assert.deepEqual(normalizeIp("::ffff:10.1.2.3"), { family: 4, ip: "10.1.2.3" });
  assert.deepEqual(normalizeIp("2001:DB8::1"), { family: 6, ip: "2001:db8::1" });
});

Deno.test("address attributes round-trip, XOR and plain, and reject junk", () => {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  for (
    const a of [
      { family: 4 as const, ip: "203.0.113.7", port: 1 },
      { family: 6 as const, ip: "2001:db8::1", port: 65535 },
      { family: 6 as const, ip: "::", port: 3478 },
    ]
  ) {
    assert.deepEqual(decodeXorAddress(encodeXorAddress(a, tid), tid), a);
    assert.deepEqual(decodeAddress(encodeAddress(a)), a);
  }
  assert.deepEqual(decodeXorAddress(hex("0003 0000 01020304"), tid), null);
  assert.deepEqual(decodeXorAddress(hex("0001 0000 010203"), tid), null);
  assert.deepEqual(decodeXorAddress(undefined, tid), null);
  assert.throws(() => encodeAddress({ family: 4, ip: "::1", port: 1 }));
});

Deno.test("ERROR-CODE and ChannelData values", () => {
  assert.deepEqual(decodeErrorCode(encodeErrorCode(438, "Stale Nonce")), {
    code: 438,
    reason: "Stale Nonce",
  });
  assert.deepEqual(encodeErrorCode(401, ""), hex("00000401"));
  assert.deepEqual(decodeErrorCode(hex("0000 04")), null);
  assert.throws(() => encodeErrorCode(200, "OK"));
  const cd = encodeChannelData(0x4001, utf8("hello"));
  assert.deepEqual(cd, hex("4001 0005 68656c6c6f"));
  assert.deepEqual(decodeChannelData(cd), { channel: 0x4001, data: utf8("hello") });
  const padded = encodeChannelData(0x7fff, utf8("hello"), true);
  assert.deepEqual(padded.length, 12);
  assert.deepEqual(decodeChannelData(padded)?.data, utf8("hello"));
  assert.deepEqual(decodeChannelData(cd.subarray(0, 8)), null);
  assert.deepEqual(decodeChannelData(hex("0001 0000")), null);
  assert.throws(() => encodeChannelData(0x3fff, new Uint8Array(1)));
});

Deno.test("fuzz: random, truncated and bit-flipped datagrams never throw", () => {
  const seeds = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE, LONG_TERM_REQUEST];
  const probe = (buf: Uint8Array) => {
    const m = decodeStun(buf);
    if (m) {
      assert.ok(m.raw.length <= buf.length);
      checkIntegrity(m, "k");
      checkFingerprint(m);
      for (const a of m.attributes) {
        decodeXorAddress(a.value, m.transactionId);
        decodeAddress(a.value);
        decodeErrorCode(a.value);
      }
    }
    decodeChannelData(buf);
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => probe(b)),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 6 }),
      fc.nat(),
      (i, flips, cut) => {
        const b = seeds[i].slice(0, seeds[i].length - (cut % 8 === 0 ? cut % seeds[i].length : 0));
        for (const [at, bit] of flips) if (b.length) b[at % b.length] ^= 1 << bit;
        probe(b);
      },
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }), (parts) => {
      // A valid header followed by random TLVs with consistent length.
      const body: number[] = [];
      for (const p of parts) {
        body.push(0, p[0] ?? 0, 0, p.length, ...p, ...new Array((4 - p.length % 4) % 4).fill(0));
      }
      const b = new Uint8Array([
        0,
        1,
        body.length >> 8,
        body.length & 0xff,
        0x21,
        0x12,
        0xa4,
        0x42,
        ...new Array(12).fill(7),
        ...body,
      ]);
      probe(b);
    }),
    { numRuns: 2000 },
  );
});
