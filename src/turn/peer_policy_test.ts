import assert from "node:assert/strict";
import { isRelayablePeer, parseRange, PeerPolicy } from "./peer_policy.ts";

Deno.test("default peer policy: public unicast only, IPv4-mapped forms judged as IPv4", () => {
  const denied = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.0",
    "100.127.255.255",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.168.0.1",
    "198.18.0.1",
    "198.19.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::a00:1", // IPv4-compatible (deprecated)
    "64:ff9b::a00:1",
    "2001:db8::1",
    "2001::1",
    "2002:c0a8:101::1",
    "fc00::1",
    "fdff:ffff::1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "not an ip",
    "",
    "1.2.3",
    "1.2.3.256",
  ];
  for (const ip of denied) assert.equal(isRelayablePeer(ip), false, ip);
  const allowed = [
    "1.1.1.1",
    "9.9.9.9",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "223.255.255.255",
    "::ffff:8.8.8.8",
    "2606:4700:4700::1111",
    "2a00:1450::1",
  ];
  for (const ip of allowed) assert.equal(isRelayablePeer(ip), true, ip);
});

Deno.test("PeerPolicy: the operator's allow list wins over denials; extra denials apply", () => {
  const p = new PeerPolicy({
    allow: ["10.8.0.0/16", "fd00:1::/64", "127.0.0.1"],
    deny: ["9.9.9.0/24"],
  });
  assert.equal(p.allows("10.8.3.4"), true);
  assert.equal(p.allows("::ffff:10.8.3.4"), true);
  assert.equal(p.allows("10.9.0.1"), false);
  assert.equal(p.allows("fd00:1::5"), true);
  assert.equal(p.allows("fd00:2::5"), false);
  assert.equal(p.allows("127.0.0.1"), true);
  assert.equal(p.allows("127.0.0.2"), false);
  assert.equal(p.allows("9.9.9.9"), false);
  assert.equal(p.allows("9.9.8.9"), true);
});

Deno.test("parseRange(): addresses and prefixes; malformed ranges are named", () => {
  assert.deepEqual(parseRange("10.0.0.0/8").bits, 8);
  assert.deepEqual(parseRange("10.1.2.3").bits, 32);
  assert.deepEqual(parseRange("fe80::/10").bits, 10);
  assert.deepEqual(parseRange(" ::1 ").bits, 128);
  for (
    const bad of [
      "10.0.0.0/33",
      "fe80::/129",
      "10.0.0/8",
      "x",
      "10.0.0.0/8/1",
      "1.2.3.4/-1",
      "1.2.3.4/",
    ]
  ) {
    assert.throws(() => parseRange(bad), /not an address range/, bad);
  }
  assert.throws(() => new PeerPolicy({ allow: ["10.0.0.0/8", "oops"] }), /"oops"/);
});

Deno.test("listed: only the operator's allowed ranges, not every public address", () => {
  const policy = new PeerPolicy({ allow: ["127.0.0.1", "10.0.0.0/8"] });
  assert.equal(policy.listed("127.0.0.1"), true);
  assert.equal(policy.listed("::ffff:10.1.2.3"), true);
  assert.equal(policy.listed("9.9.9.9"), false);
  assert.equal(policy.allows("9.9.9.9"), true);
  assert.equal(policy.listed("not an ip"), false);
});
