import assert from "node:assert/strict";
import { addressKind, addressPolicy, parseRange } from "./public_address.ts";

Deno.test("addressKind() names the non-public IPv4 blocks and takes the rest as public", () => {
  const table: [string, string][] = [
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["10.0.0.5", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "shared"],
    ["100.127.255.255", "shared"],
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["169.254.169.254", "link-local"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "reserved"],
    ["240.0.0.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["192.0.0.8", "reserved"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["1.1.1.1", "public"],
    ["100.63.255.255", "public"],
    ["100.128.0.0", "public"],
    ["172.32.0.1", "public"],
    ["172.15.255.255", "public"],
    ["169.253.0.1", "public"],
    ["93.184.216.34", "public"],
  ];
  for (const [ip, kind] of table) assert.equal(addressKind(ip), kind, ip);
});

Deno.test("addressKind() judges IPv6, and IPv4-mapped and NAT64 addresses by their IPv4 address", () => {
  const table: [string, string][] = [
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fec0::1", "private"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["2001::1", "reserved"], // Teredo
    ["2002:7f00:1::1", "reserved"], // 6to4 of 127.0.0.1
    ["2002:5db8:d822::1", "reserved"], // 6to4 of a public address: deprecated, refused too
    ["64:ff9b:1::a00:5", "private"],
    ["::7f00:1", "reserved"], // IPv4-compatible (deprecated)
    ["100::1", "reserved"], // discard-only
    ["4000::1", "reserved"], // outside global unicast
    // IPv4-mapped: what a dual-stack socket connects to is the IPv4 address.
    ["::ffff:127.0.0.1", "loopback"],
    ["::FFFF:7f00:1", "loopback"],
    ["::ffff:10.1.2.3", "private"],
    ["::ffff:169.254.169.254", "link-local"],
    ["::ffff:100.64.1.1", "shared"],
    ["::ffff:1.1.1.1", "public"],
    // NAT64 (DNS64 answers for IPv4-only peers): the translator connects to the IPv4 address.
    ["64:ff9b::127.0.0.1", "loopback"],
    ["64:ff9b::a00:5", "private"],
    ["64:ff9b::5db8:d822", "public"],
    ["2a01:4f8:c17:1234::1", "public"],
    ["2600:1f18::5", "public"],
  ];
  for (const [ip, kind] of table) assert.equal(addressKind(ip), kind, ip);
});

Deno.test("addressKind() says a host name, a bracketed or zoned address, or an octal-looking one is no address", () => {
  for (
    const bad of ["localhost", "", "010.0.0.1", "0x7f.0.0.1", "127.1", "2130706433", "[::1]"]
  ) {
    assert.equal(addressKind(bad), "not an IP address", bad);
  }
  for (const bad of ["fe80::1%eth0", "::ffff:010.0.0.1", "1:2:3:4:5:6:7:8:9"]) {
    assert.equal(addressKind(bad), "not an IP address", bad);
  }
});

Deno.test("addressPolicy() refuses non-public addresses by kind unless allowed", () => {
  const strict = addressPolicy();
  assert.equal(strict("93.184.216.34"), null);
  assert.equal(strict("2a01:4f8::1"), null);
  assert.equal(strict("127.0.0.1"), "loopback");
  assert.equal(strict("::ffff:127.0.0.1"), "loopback");
  assert.equal(strict("10.0.0.5"), "private");
  assert.equal(strict("localhost"), "not an IP address");

  const lab = addressPolicy({ allowNonPublic: true });
  assert.equal(lab("127.0.0.1"), null);
  assert.equal(lab("fd00::1"), null);
  // Still only addresses: a host name would be resolved again by the system, past the check.
  assert.equal(lab("localhost"), "not an IP address");

  const listed = addressPolicy({ allow: ["10.8.0.0/16", "fd00::/64", "127.0.0.2"] });
  assert.equal(listed("10.8.3.4"), null);
  assert.equal(listed("::ffff:10.8.3.4"), null);
  assert.equal(listed("10.9.0.1"), "private");
  assert.equal(listed("fd00::5"), null);
  assert.equal(listed("fd00:0:0:1::5"), "private");
  assert.equal(listed("127.0.0.2"), null);
  assert.equal(listed("127.0.0.1"), "loopback");
  assert.throws(() => addressPolicy({ allow: ["10.0.0.0/33"] }), /not an address range/);
});

Deno.test("parseRange() reads prefixes and bare addresses and names malformed ones", () => {
  assert.equal(parseRange("10.0.0.0/8").bits, 8);
  assert.equal(parseRange(" ::1 ").bits, 128);
  assert.equal(parseRange("192.0.2.1").bits, 32);
  for (const bad of ["10.0.0.0/", "10.0.0.0/8/8", "::/129", "host/8", "10.0.0.0/x"]) {
    assert.throws(() => parseRange(bad), /not an address range/, bad);
  }
});
