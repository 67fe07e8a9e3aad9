import assert from "node:assert/strict";
import { ipv6Groups, isPublicIpv6, limitKey, normalizeAddress } from "./ip.ts";

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
    const bad of ["1.2.3.4", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::1"]
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
