import assert from "node:assert/strict";
import {
  ipv6Groups,
  isPublicIpv6,
  limitKey,
  normalizeAddress,
  parseIp,
  plainAddress,
} from "./ip.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("parseIp() reads IPv4 dotted quads and every RFC 4291 IPv6 text form", () => {
  const cases: [string, number[]][] = [
    ["192.0.2.1", [192, 0, 2, 1]],
    ["0.0.0.0", [0, 0, 0, 0]],
    ["255.255.255.255", [255, 255, 255, 255]],
    ["::", Array(16).fill(0)],
    ["::1", [...Array(15).fill(0), 1]],
    ["2001:db8::ff00:42:8329", [
      0x20,
      0x01,
      0x0d,
      0xb8,
      0,
      0,
      0,
      0,
      0,
      0,
      0xff,
      0,
      0,
      0x42,
      0x83,
      0x29,
    ]],
    ["2001:0DB8:0000:0000:0001:0000:0000:0001", [
      0x20,
      0x01,
      0x0d,
      0xb8,
      0,
      0,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      0,
      1,
    ]],
    ["1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ["1::", [0, 1, ...Array(14).fill(0)]],
    // IPv4-mapped stays 16 bytes (callers judge or unmap it), in both spellings.
    ["::ffff:192.0.2.1", [...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1]],
    ["::ffff:c000:201", [...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1]],
    ["1:2:3:4:5:6:1.2.3.4", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4]],
    ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", Array(16).fill(255)],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseIp(text), bytes(...want), text);
});

Deno.test("parseIp() refuses hostile and malformed text: leading zeros, zones, brackets, overlong", () => {
  for (
    const bad of [
      "",
      "localhost",
      "example.org",
      "a.b.c.d",
      // IPv4 forms some resolvers read otherwise (octal, hex, short, one number).
      "010.0.0.1",
      "1.2.3.04",
      "0x7f.0.0.1",
      "1e2.0.0.1",
      "127.1",
      "2130706433",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.256",
      "256.1.1.1",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1..2.3",
      // The same inside IPv6, and a quad anywhere but at the end.
      "::ffff:010.0.0.1",
      "::1..2.3",
      "::1.2.3",
      "1.2.3.4::",
      "1.2.3.4::1",
      "::1.2.3.4:5",
      // Zones and brackets: plainAddress() takes them off where they are allowed.
      "fe80::1%eth0",
      "fe80::1%",
      "[::1]",
      "[::1",
      "1.2.3.4%eth0",
      // Too many groups, too long a group, more than one "::", a "::" for no group.
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "a:b:c:d:e:f:1:2:3",
      "1:2:3:4::5:6:7:8",
      "12345::",
      "00000::1",
      "1::2::3",
      ":::",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:",
      "1::2:",
      "g::1",
      "::-1",
      // Overlong: bounded before any splitting.
      "0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1",
      "1".repeat(100_000),
      ":".repeat(100_000),
      `::${"1.".repeat(50_000)}1`,
    ]
  ) {
    assert.equal(parseIp(bad), null, bad.slice(0, 60));
  }
  assert.equal(parseIp(1 as unknown as string), null, "not a string");
});

Deno.test("plainAddress() takes off brackets and an IPv6 zone, nothing else", () => {
  assert.equal(plainAddress("[2001:db8::5]"), "2001:db8::5");
  assert.equal(plainAddress("fe80::1%eth0"), "fe80::1");
  assert.equal(plainAddress("[fe80::1%25eth0]"), "fe80::1");
  assert.equal(plainAddress("1.2.3.4%eth0"), "1.2.3.4%eth0");
  assert.equal(plainAddress("[::1"), "[::1");
  assert.equal(plainAddress("example.org"), "example.org");
});

Deno.test("ipv6Groups reads every RFC 4291 text form and refuses the rest", () => {
  assert.deepEqual(ipv6Groups("::1"), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(ipv6Groups("::"), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(ipv6Groups("2001:DB8::8:800:200C:417A"), [
    0x2001,
    0xdb8,
    0,
    0,
    8,
    0x800,
    0x200c,
    0x417a,
  ]);
  assert.deepEqual(ipv6Groups("[fe80::1%eth0]"), [0xfe80, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(ipv6Groups("::ffff:192.0.2.1"), [0, 0, 0, 0, 0, 0xffff, 0xc000, 0x201]);
  assert.deepEqual(ipv6Groups("1:2:3:4:5:6:7:8"), [1, 2, 3, 4, 5, 6, 7, 8]);
  for (
    const bad of [
      "1.2.3.4",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::1",
      // Once taken: a quad before "::", an empty or zero-led octet in the IPv4 tail.
      "1.2.3.4::",
      "::1..2.3",
      "::ffff:010.0.0.1",
    ]
  ) {
    assert.equal(ipv6Groups(bad), null, bad);
  }
});

Deno.test("limitKey counts IPv4 per address and IPv6 per /64", () => {
  assert.equal(limitKey("192.0.2.7"), "192.0.2.7");
  assert.equal(limitKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(normalizeAddress("::ffff:192.0.2.7"), "192.0.2.7");
  const a = limitKey("2001:db8:1:2::1");
  assert.equal(a, "2001:db8:1:2::/64");
  // Every address of the /64, however written, is one client.
  assert.equal(limitKey("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff"), a);
  assert.equal(limitKey("2001:db8:1:2:abcd::"), a);
  assert.notEqual(limitKey("2001:db8:1:3::1"), a);
  assert.equal(limitKey("::1"), "0:0:0:0::/64");
});

Deno.test("isPublicIpv6 accepts global unicast only", () => {
  assert.ok(isPublicIpv6("2a01:4f8:c17:1234::1"));
  assert.ok(isPublicIpv6("2600:1f18::5"));
  for (
    const x of [
      "::1",
      "fe80::1",
      "fd00::1",
      "2001:db8::1",
      "ff02::1",
      "::ffff:1.2.3.4",
      "2002::1",
      "2001::1",
    ]
  ) {
    assert.ok(!isPublicIpv6(x), x);
  }
});
