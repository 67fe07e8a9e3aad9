import assert from "node:assert/strict";
import dgram from "node:dgram";
import { startTurnServer } from "./server.ts";
import { PeerPolicy } from "./peer_policy.ts";
import type { TurnServer, TurnServerOptions } from "./server.ts";
import { longTermKey, turnCredentials } from "./credentials.ts";
import {
  Attr,
  checkFingerprint,
  checkIntegrity,
  Class,
  decodeChannelData,
  decodeStun,
  decodeXorAddress,
  encodeChannelData,
  encodeStun,
  getAttr,
  Method,
  readU32,
  text,
  u32,
  utf8,
} from "./stun.ts";
import type { TransportAddress } from "./stun.ts";

import { Client, Endpoint, errorCode, peerAttr, transport } from "./testdata/turn_client.ts";
import { requireTool } from "../../tests/support/tools.ts";

const SECRET = "test-secret";
const REALM = "example.org";

async function withServer(
  options: Partial<TurnServerOptions>,
  body: (server: TurnServer) => Promise<void>,
) {
  const server = await startTurnServer({
    host: "127.0.0.1",
    port: 0,
    relayHost: "127.0.0.1",
    realm: REALM,
    secret: () => SECRET,
    allowPeer: () => true,
    // Most tests use plain sockets on the relay's loopback address as peers.
    ownAddressAnyPort: true,
    ...options,
  });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const loopback = (port: number): TransportAddress => ({ family: 4, ip: "127.0.0.1", port });

/** A CreatePermission for the peer, asserting success. */
async function permit(c: Client, peer: TransportAddress) {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  const r = await c.request(Method.CreatePermission, [peerAttr(peer, tid)], { tid });
  assert.equal(r.cls, Class.Success, `CreatePermission: ${errorCode(r)}`);
}

function sendIndication(peer: TransportAddress, data: Uint8Array): Uint8Array {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  return encodeStun({
    method: Method.Send,
    cls: Class.Indication,
    transactionId: tid,
    attributes: [peerAttr(peer, tid), { type: Attr.Data, value: data }],
  });
}

Deno.test("Binding is answered without authentication, with XOR-MAPPED-ADDRESS", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      const r = await c.request(Method.Binding, [], { fingerprint: true });
      assert.equal(r.cls, Class.Success);
      assert.deepEqual(
        decodeXorAddress(getAttr(r, Attr.XorMappedAddress), r.transactionId),
        loopback(c.ep.port),
      );
      assert.equal(checkFingerprint(r), "valid");
      assert.equal(getAttr(r, Attr.Software), undefined);
    } finally {
      await c.close();
    }
  });
});

Deno.test("answers without integrity (Binding, 401) are rate-limited per client IP: no reflection flood", async () => {
  // A spoofed source gets these answers, several times the size of the request. The clock stands
  // still, so exactly the burst is answered until it moves on.
  let now = Date.now();
  await withServer(
    { now: () => now, unauthenticatedBurst: 10, unauthenticatedPerSecond: 5 },
    async (server) => {
      const victim = await Endpoint.open("127.0.0.1");
      const other = await Client.open(server, "127.0.0.3");
      try {
        for (let i = 0; i < 40; i++) {
          const tid = crypto.getRandomValues(new Uint8Array(12));
          const req = encodeStun({
            method: i % 2 ? Method.Binding : Method.Allocate,
            cls: Class.Request,
            transactionId: tid,
            attributes: [],
          });
          victim.send(req, server.port);
        }
        for (let i = 0; i < 10; i++) assert.ok(await victim.recv(5000), `answer ${i}`);
        assert.equal(await victim.recv(300), null, "more than the burst answered");
        // Another IP is not affected.
        assert.equal((await other.request(Method.Binding, [])).cls, Class.Success);
        now += 1000; // 5 more
        for (let i = 0; i < 40; i++) {
          const tid = crypto.getRandomValues(new Uint8Array(12));
          const req = encodeStun({
            method: Method.Binding,
            cls: Class.Request,
            transactionId: tid,
            attributes: [],
          });
          victim.send(req, server.port);
        }
        for (let i = 0; i < 5; i++) assert.ok(await victim.recv(5000), `later answer ${i}`);
        assert.equal(await victim.recv(300), null, "more than the rate answered");
      } finally {
        await victim.close();
        await other.close();
      }
    },
  );
});

Deno.test("Allocate: 401 challenge, then relayed/mapped address, lifetime and integrity", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      const r = await c.allocate(creds, [
        transport(17),
        { type: Attr.Lifetime, value: u32(100_000) },
      ]);
      assert.equal(r.cls, Class.Success, `Allocate failed: ${errorCode(r)}`);
      assert.ok(checkIntegrity(r, c.key!));
      const relayed = decodeXorAddress(getAttr(r, Attr.XorRelayedAddress), r.transactionId)!;
      assert.equal(relayed.ip, "127.0.0.1");
      assert.ok(relayed.port > 0 && relayed.port !== server.port);
      assert.deepEqual(
        decodeXorAddress(getAttr(r, Attr.XorMappedAddress), r.transactionId),
        loopback(c.ep.port),
      );
      assert.equal(readU32(getAttr(r, Attr.Lifetime)), 3600); // capped at the maximum
      assert.equal(server.stats().allocations, 1);

      // A retransmission gets the same answer; a new transaction on the same 5-tuple gets 437.
      const again = await c.request(Method.Allocate, [transport(17)], { tid: r.transactionId });
      assert.deepEqual(again.raw, r.raw);
      const other = await c.request(Method.Allocate, [transport(17)]);
      assert.equal(errorCode(other), 437);
      assert.ok(checkIntegrity(other, c.key!));
    } finally {
      await c.close();
    }
  });
});

Deno.test("Allocate: wrong password and expired username get 401 again, stale nonce 438", async () => {
  let now = Date.now();
  await withServer({ now: () => now, nonceLifetimeSec: 60 }, async (server) => {
    const c = await Client.open(server);
    try {
      const good = turnCredentials(SECRET, now);
      const wrong = await c.allocate({ username: good.username, password: "nope" });
      assert.equal(errorCode(wrong), 401);
      assert.ok(getAttr(wrong, Attr.Nonce) && getAttr(wrong, Attr.Realm));
      assert.equal(wrong.integrityAt, -1);

      const expired = turnCredentials(SECRET, now - 86400_000, 60);
      assert.equal(errorCode(await c.allocate(expired)), 401);

      const otherSecret = turnCredentials("another secret", now);
      assert.equal(errorCode(await c.allocate(otherSecret)), 401);

      // Missing NONCE with MESSAGE-INTEGRITY is a bad request.
      const tid = crypto.getRandomValues(new Uint8Array(12));
      c.send(encodeStun({
        method: Method.Allocate,
        cls: Class.Request,
        transactionId: tid,
        attributes: [transport(17), { type: Attr.Username, value: utf8(good.username) }],
      }, { integrityKey: c.key }));
      const bad = await c.ep.recv(2000, (d) => decodeStun(d)?.transactionId.join() === tid.join());
      assert.equal(errorCode(decodeStun(bad!.data)!), 400);

      // The nonce goes stale: 438 with a fresh one, which then works.
      const first = await c.request(Method.Allocate, [transport(17)], { auth: false });
      c.nonce = text(getAttr(first, Attr.Nonce))!;
      c.username = good.username;
      c.key = longTermKey(good.username, REALM, good.password);
      now += 61_000;
      const stale = await c.request(Method.Allocate, [transport(17)]);
      assert.equal(errorCode(stale), 438);
      c.nonce = text(getAttr(stale, Attr.Nonce))!;
      const ok = await c.request(Method.Allocate, [transport(17)]);
      assert.equal(ok.cls, Class.Success);
      assert.equal(server.stats().allocations, 1);
    } finally {
      await c.close();
    }
  });
});

Deno.test("Allocate: 400 without REQUESTED-TRANSPORT, 442 for TCP, 420 unknown, 440 IPv6", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      assert.equal(errorCode(await c.allocate(creds, [])), 400);
      assert.equal(errorCode(await c.allocate(creds, [transport(6)])), 442);
      const df = await c.allocate(creds, [transport(17), {
        type: Attr.DontFragment,
        value: new Uint8Array(0),
      }]);
      assert.equal(errorCode(df), 420);
      assert.deepEqual(getAttr(df, Attr.UnknownAttributes), new Uint8Array([0x00, 0x1a]));
      const v6 = await c.allocate(creds, [transport(17), {
        type: Attr.RequestedAddressFamily,
        value: new Uint8Array([2, 0, 0, 0]),
      }]);
      assert.equal(errorCode(v6), 440);
      assert.equal(server.stats().allocations, 0);
    } finally {
      await c.close();
    }
  });
});

Deno.test("Allocate: quota gives 486", async () => {
  await withServer({ maxAllocations: 1 }, async (server) => {
    const a = await Client.open(server);
    const b = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      assert.equal((await a.allocate(creds)).cls, Class.Success);
      assert.equal(errorCode(await b.allocate(creds)), 486);
      await a.request(Method.Refresh, [{ type: Attr.Lifetime, value: u32(0) }]);
      assert.equal((await b.allocate(creds)).cls, Class.Success);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("Allocate: per-IP quota gives 486 too", async () => {
  await withServer({ maxAllocationsPerIp: 1 }, async (server) => {
    const a = await Client.open(server);
    const b = await Client.open(server);
    const other = await Client.open(server, "127.0.0.3");
    try {
      const creds = turnCredentials(SECRET, Date.now());
      assert.equal((await a.allocate(creds)).cls, Class.Success);
      assert.equal(errorCode(await b.allocate(creds)), 486);
      assert.equal((await other.allocate(creds)).cls, Class.Success);
    } finally {
      await a.close();
      await b.close();
      await other.close();
    }
  });
});

Deno.test("Allocate: reserved ports count against the per-IP quota (EVEN-PORT R, then delete)", async () => {
  await withServer({ maxAllocationsPerIp: 2 }, async (server) => {
    const a = await Client.open(server);
    const b = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      const evenR = [transport(17), { type: Attr.EvenPort, value: new Uint8Array([0x80]) }];
      const first = await a.allocate(creds, evenR);
      assert.equal(first.cls, Class.Success, `Allocate: ${errorCode(first)}`);
      const token = getAttr(first, Attr.ReservationToken)!;
      assert.ok(token);
      const del = await a.request(Method.Refresh, [{ type: Attr.Lifetime, value: u32(0) }]);
      assert.equal(del.cls, Class.Success);
      // The reserved port is still held: another allocation with a reservation would exceed 2.
      assert.equal(errorCode(await a.request(Method.Allocate, evenR)), 486);
      // The token hands the reserved port over without needing more quota.
      const second = await b.allocate(creds, [transport(17), {
        type: Attr.ReservationToken,
        value: token,
      }]);
      assert.equal(second.cls, Class.Success, `Allocate with token: ${errorCode(second)}`);
      assert.equal((await a.request(Method.Allocate, [transport(17)])).cls, Class.Success);
      assert.equal(
        errorCode(
          await Client.open(server).then(async (c) => {
            try {
              return await c.allocate(creds);
            } finally {
              await c.close();
            }
          }),
        ),
        486,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("Allocate: a burst from many ports of one IP stays within the per-IP quota", async () => {
  await withServer({ maxAllocationsPerIp: 3 }, async (server) => {
    const creds = turnCredentials(SECRET, Date.now());
    const clients = await Promise.all(Array.from({ length: 30 }, () => Client.open(server)));
    try {
      // Each has its nonce first; then all Allocates go out at once.
      for (const c of clients) {
        const r = await c.request(Method.Allocate, [transport(17)], { auth: false });
        c.nonce = text(getAttr(r, Attr.Nonce))!;
        c.username = creds.username;
        c.key = longTermKey(creds.username, REALM, creds.password);
      }
      const answers = await Promise.all(
        clients.map((c) => c.request(Method.Allocate, [transport(17)])),
      );
      const ok = answers.filter((m) => m.cls === Class.Success).length;
      assert.equal(ok, 3, `${ok} allocations for one IP`);
      assert.equal(server.stats().allocations, 3);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});

Deno.test("close() releases the listener, relay and reserved ports", async () => {
  const server = await startTurnServer({
    host: "127.0.0.1",
    port: 0,
    relayHost: "127.0.0.1",
    realm: REALM,
    secret: () => SECRET,
  });
  const c = await Client.open(server);
  let ports: number[];
  try {
    const r = await c.allocate(turnCredentials(SECRET, Date.now()), [transport(17), {
      type: Attr.EvenPort,
      value: new Uint8Array([0x80]),
    }]);
    const relayPort = decodeXorAddress(getAttr(r, Attr.XorRelayedAddress), r.transactionId)!.port;
    ports = [server.port, relayPort, relayPort + 1];
  } finally {
    await server.close();
    await c.close();
  }
  for (const port of ports) {
    const s = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.bind(port, "127.0.0.1", () => resolve());
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

Deno.test("Send indications and Data indications carry data only for permitted peers", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    const peer = await Endpoint.open();
    const stranger = await Endpoint.open("127.0.0.2");
    try {
      const alloc = await c.allocate(turnCredentials(SECRET, Date.now()));
      const relayed = decodeXorAddress(
        getAttr(alloc, Attr.XorRelayedAddress),
        alloc.transactionId,
      )!;
      // No permission yet: nothing reaches the peer.
      c.send(sendIndication(loopback(peer.port), utf8("too early")));
      assert.equal(await peer.recv(200), null);

      await permit(c, loopback(peer.port));
      c.send(sendIndication(loopback(peer.port), utf8("hello peer")));
      const got = await peer.recv();
      assert.ok(got, "the relay did not carry the Send indication");
      assert.equal(text(got.data), "hello peer");
      assert.equal(got.port, relayed.port);

      peer.send(utf8("hello client"), relayed.port);
      const back = await c.ep.recv(2000, (d) => decodeStun(d)?.method === Method.Data);
      assert.ok(back, "no Data indication");
      const di = decodeStun(back.data)!;
      assert.equal(di.cls, Class.Indication);
      assert.equal(text(getAttr(di, Attr.Data)), "hello client");
      assert.deepEqual(
        decodeXorAddress(getAttr(di, Attr.XorPeerAddress), di.transactionId),
        loopback(peer.port),
      );

      // 127.0.0.2 has no permission: dropped both ways.
      stranger.send(utf8("let me in"), relayed.port);
      c.send(sendIndication({ family: 4, ip: "127.0.0.2", port: stranger.port }, utf8("x")));
      assert.equal(await c.ep.recv(200), null);
      assert.equal(await stranger.recv(200), null);
    } finally {
      await c.close();
      await peer.close();
      await stranger.close();
    }
  });
});

Deno.test("ChannelBind: ChannelData both ways; bad channel numbers and rebinding get 400", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    const peer = await Endpoint.open();
    const peer2 = await Endpoint.open();
    try {
      const alloc = await c.allocate(turnCredentials(SECRET, Date.now()));
      const relayed = decodeXorAddress(
        getAttr(alloc, Attr.XorRelayedAddress),
        alloc.transactionId,
      )!;
      const bind = async (channel: number, p: TransportAddress) => {
        const tid = crypto.getRandomValues(new Uint8Array(12));
        return await c.request(Method.ChannelBind, [
          { type: Attr.ChannelNumber, value: new Uint8Array([channel >> 8, channel & 0xff, 0, 0]) },
          peerAttr(p, tid),
        ], { tid });
      };
      assert.equal((await bind(0x4000, loopback(peer.port))).cls, Class.Success);
      assert.equal((await bind(0x4000, loopback(peer.port))).cls, Class.Success); // refresh
      assert.equal(errorCode(await bind(0x3fff, loopback(peer2.port))), 400);
      assert.equal(errorCode(await bind(0x4000, loopback(peer2.port))), 400);
      assert.equal(errorCode(await bind(0x4001, loopback(peer.port))), 400);
      assert.equal(server.stats().channels, 1);

      c.send(encodeChannelData(0x4000, utf8("over the channel")));
      const got = await peer.recv();
      assert.equal(text(got?.data), "over the channel");
      c.send(encodeChannelData(0x4001, utf8("unbound channel")));
      assert.equal(await peer.recv(200), null);

      peer.send(utf8("channel back"), relayed.port);
      const back = await c.ep.recv(2000, (d) => (d[0] & 0xc0) === 0x40);
      assert.deepEqual(decodeChannelData(back!.data), {
        channel: 0x4000,
        data: utf8("channel back"),
      });
      // The channel's permission covers the whole IP; another port of it gets Data indications.
      peer2.send(utf8("same ip"), relayed.port);
      const di = await c.ep.recv(2000, (d) => decodeStun(d)?.method === Method.Data);
      assert.equal(text(getAttr(decodeStun(di!.data)!, Attr.Data)), "same ip");
    } finally {
      await c.close();
      await peer.close();
      await peer2.close();
    }
  });
});

/** A CreatePermission for one peer: the error code, or null on success. */
async function permission(c: Client, peer: TransportAddress): Promise<number | null> {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  return errorCode(await c.request(Method.CreatePermission, [peerAttr(peer, tid)], { tid }));
}

async function channelBind(c: Client, ch: number, peer: TransportAddress) {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  return errorCode(
    await c.request(Method.ChannelBind, [
      { type: Attr.ChannelNumber, value: new Uint8Array([ch >> 8, ch & 0xff, 0, 0]) },
      peerAttr(peer, tid),
    ], { tid }),
  );
}

Deno.test("peer policy by default: private, loopback, link-local, CGNAT and multicast peers get 403", async () => {
  await withServer({ allowPeer: undefined }, async (server) => {
    const c = await Client.open(server);
    try {
      await c.allocate(turnCredentials(SECRET, Date.now()));
      for (
        const ip of [
          "10.1.2.3",
          "172.16.0.1",
          "172.31.255.254",
          "192.168.1.1",
          "100.64.0.1",
          "169.254.169.254",
          "127.0.0.2",
          "0.0.0.1",
          "224.0.0.251",
          "255.255.255.255",
          "192.0.2.7",
        ]
      ) {
        assert.equal(await permission(c, { family: 4, ip, port: 9 }), 403, ip);
        assert.equal(await channelBind(c, 0x4000, { family: 4, ip, port: 9 }), 403, ip);
      }
      // A public address is fine (a permission sends nothing), and so is the relay's own address
      // (two clients of this server reach each other through it).
      assert.equal(await permission(c, { family: 4, ip: "9.9.9.9", port: 9 }), null);
      assert.equal(await permission(c, { family: 4, ip: "127.0.0.1", port: 9 }), null);
      assert.equal(server.stats().permissions, 2);
      assert.equal(server.stats().channels, 0);
    } finally {
      await c.close();
    }
  });
});

Deno.test("peer policy over an IPv6 relay: ULA, link-local, loopback and IPv4-mapped private peers get 403", async () => {
  await withServer({ allowPeer: undefined, host: "::1", relayHost: "::1" }, async (server) => {
    const c = await Client.open(server, "::1");
    try {
      await c.allocate(turnCredentials(SECRET, Date.now()), [
        transport(17),
        { type: Attr.RequestedAddressFamily, value: new Uint8Array([2, 0, 0, 0]) },
      ]);
      for (
        const ip of ["fc00::1", "fd12:3456::1", "fe80::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1"]
      ) {
        assert.equal(await permission(c, { family: 6, ip, port: 9 }), 403, ip);
      }
      for (const ip of ["ff02::1", "2001:db8::1", "64:ff9b::a00:1", "2002:a00:1::1"]) {
        assert.equal(await permission(c, { family: 6, ip, port: 9 }), 403, ip);
      }
      assert.equal(await permission(c, { family: 6, ip: "2606:4700::1111", port: 9 }), null);
      assert.equal(await permission(c, { family: 4, ip: "9.9.9.9", port: 9 }), 443);
    } finally {
      await c.close();
    }
  });
});

Deno.test("peer policy: CreatePermission, ChannelBind and Send reach allowed peers only", async () => {
  // As a relay configured with turn_allowed_peers = "127.0.0.1" (no other loopback address).
  const policy = new PeerPolicy({ allow: ["127.0.0.1"] });
  await withServer({ allowPeer: (ip) => policy.allows(ip) }, async (server) => {
    const c = await Client.open(server);
    const allowed = await Endpoint.open("127.0.0.1");
    const denied = await Endpoint.open("127.0.0.2");
    try {
      await c.allocate(turnCredentials(SECRET, Date.now()));
      const bad = { family: 4 as const, ip: "127.0.0.2", port: denied.port };
      assert.equal(await permission(c, bad), 403);
      assert.equal(await channelBind(c, 0x4001, bad), 403);
      // A permission request naming an allowed and a denied peer fails as a whole.
      const tid = crypto.getRandomValues(new Uint8Array(12));
      const both = await c.request(Method.CreatePermission, [
        peerAttr(loopback(allowed.port), tid),
        peerAttr(bad, tid),
      ], { tid });
      assert.equal(errorCode(both), 403);
      assert.equal(server.stats().permissions, 0);
      // Send to the denied peer is dropped; to the allowed one it arrives (and only it).
      c.send(sendIndication(bad, utf8("to the denied")));
      assert.equal(await permission(c, loopback(allowed.port)), null);
      assert.equal(await channelBind(c, 0x4000, loopback(allowed.port)), null);
      c.send(sendIndication(bad, utf8("to the denied, again")));
      c.send(sendIndication(loopback(allowed.port), utf8("to the allowed")));
      assert.equal(text((await allowed.recv())?.data), "to the allowed");
      c.send(encodeChannelData(0x4000, utf8("over the channel")));
      assert.equal(text((await allowed.recv())?.data), "over the channel");
      assert.equal(await denied.recv(200), null, "nothing reached the denied peer");
    } finally {
      await c.close();
      await allowed.close();
      await denied.close();
    }
  });
});

Deno.test("the relay's own address: only other allocations' relay ports, never the listener or other local services", async () => {
  // The relay address is always a permitted peer (in production a public address, which the
  // policy passes anyway), but a client must not reach the TURN listener itself through it (a
  // relay loop whose requests come from the server's own address) nor other UDP services there.
  await withServer(
    { allowPeer: undefined, ownAddressAnyPort: false },
    async (server) => {
      const a = await Client.open(server);
      const b = await Client.open(server);
      const service = await Endpoint.open("127.0.0.1");
      try {
        await a.allocate(turnCredentials(SECRET, Date.now()));
        const allocB = await b.allocate(turnCredentials(SECRET, Date.now()));
        const relayB = decodeXorAddress(
          getAttr(allocB, Attr.XorRelayedAddress),
          allocB.transactionId,
        )!;
        assert.equal(await permission(a, loopback(9)), null, "permissions name an IP only");
        assert.equal(await channelBind(a, 0x4000, loopback(server.port)), 403);
        assert.equal(await channelBind(a, 0x4001, loopback(service.port)), 403);
        // A Binding request sent through the relay to the listener would be answered to the relay.
        const tid = crypto.getRandomValues(new Uint8Array(12));
        const binding = encodeStun({
          method: Method.Binding,
          cls: Class.Request,
          transactionId: tid,
          attributes: [],
        });
        a.send(sendIndication(loopback(server.port), binding));
        a.send(sendIndication(loopback(service.port), utf8("to a local service")));
        // Another client's relay port on the same address is fine (two callers on one server).
        await permit(b, loopback(9));
        assert.equal(await channelBind(a, 0x4002, relayB), null);
        a.send(encodeChannelData(0x4002, utf8("to b")));
        const got = await b.ep.recv(5000, (d) => decodeStun(d)?.method === Method.Data);
        assert.ok(got, "b got nothing through its relay");
        assert.equal(text(getAttr(decodeStun(got.data)!, Attr.Data)), "to b");
        assert.equal(await service.recv(300), null, "the local service was reached");
        assert.equal(
          await a.ep.recv(300, (d) => decodeStun(d)?.method === Method.Data),
          null,
          "the listener answered through the relay",
        );
      } finally {
        await a.close();
        await b.close();
        await service.close();
      }
    },
  );
});

Deno.test("ChannelBind: channels per allocation are bounded (508), rebinding an existing one is not", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      await c.allocate(turnCredentials(SECRET, Date.now()));
      let refused = 0;
      // One permitted IP, a new peer port per channel: 16384 numbers would be valid.
      for (let i = 0; i < 300 && !refused; i++) {
        const code = await channelBind(c, 0x4000 + i, loopback(10_000 + i));
        if (code === 508) refused = i;
        else assert.equal(code, null, `channel ${i}`);
      }
      assert.equal(refused, 256, "channel count at the first 508");
      assert.equal(server.stats().channels, 256);
      assert.equal(await channelBind(c, 0x4000, loopback(10_000)), null, "refresh of a bound one");
    } finally {
      await c.close();
    }
  });
});

Deno.test("Refresh: lifetimes, 0 deletes, 437 without allocation, 441 for another user", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      const none = await c.allocate(creds, []); // 400, but sets up the credentials
      assert.equal(errorCode(none), 400);
      assert.equal(errorCode(await c.request(Method.Refresh, [])), 437);
      await c.allocate(creds);
      const r = await c.request(Method.Refresh, [{ type: Attr.Lifetime, value: u32(7200) }]);
      assert.equal(readU32(getAttr(r, Attr.Lifetime)), 3600);
      const d = await c.request(Method.Refresh, []);
      assert.equal(readU32(getAttr(d, Attr.Lifetime)), 600);

      const other = turnCredentials(SECRET, Date.now(), 3600);
      const saved = { username: c.username, key: c.key };
      c.username = other.username;
      c.key = longTermKey(other.username, REALM, other.password);
      assert.equal(errorCode(await c.request(Method.Refresh, [])), 441);
      c.username = saved.username;
      c.key = saved.key;

      const z = await c.request(Method.Refresh, [{ type: Attr.Lifetime, value: u32(0) }]);
      assert.equal(z.cls, Class.Success);
      assert.equal(readU32(getAttr(z, Attr.Lifetime)), 0);
      assert.equal(server.stats().allocations, 0);
      assert.equal(errorCode(await c.request(Method.Refresh, [])), 437);
    } finally {
      await c.close();
    }
  });
});

/** Waits (at most 10 s) until the sweep made `done` true. */
async function sweptUntil(done: () => boolean) {
  for (const deadline = Date.now() + 10_000; !done();) {
    if (Date.now() > deadline) throw new Error("the sweep did not run within 10 s");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("allocations and permissions expire on the clock and are swept", async () => {
  let now = Date.now();
  await withServer({ now: () => now, sweepIntervalMs: 10 }, async (server) => {
    const c = await Client.open(server);
    const peer = await Endpoint.open();
    try {
      const alloc = await c.allocate(turnCredentials(SECRET, now));
      const relayed = decodeXorAddress(
        getAttr(alloc, Attr.XorRelayedAddress),
        alloc.transactionId,
      )!;
      await permit(c, loopback(peer.port));
      now += 301_000; // permissions last 300 s
      peer.send(utf8("late"), relayed.port);
      assert.equal(await c.ep.recv(200), null);
      // The sweep runs every 10 ms: wait for it to have removed the permission.
      await sweptUntil(() => server.stats().permissions === 0);
      assert.equal(server.stats().allocations, 1);
      now += 300_000; // the allocation's 600 s are over
      await sweptUntil(() => server.stats().allocations === 0);
    } finally {
      await c.close();
      await peer.close();
    }
  });
});

Deno.test("EVEN-PORT with R reserves the next port for a RESERVATION-TOKEN", async () => {
  await withServer({}, async (server) => {
    const a = await Client.open(server);
    const b = await Client.open(server);
    try {
      const creds = turnCredentials(SECRET, Date.now());
      const r = await a.allocate(creds, [transport(17), {
        type: Attr.EvenPort,
        value: new Uint8Array([0x80]),
      }]);
      assert.equal(r.cls, Class.Success);
      const port = decodeXorAddress(getAttr(r, Attr.XorRelayedAddress), r.transactionId)!.port;
      assert.equal(port % 2, 0);
      const token = getAttr(r, Attr.ReservationToken);
      assert.equal(token?.length, 8);
      const r2 = await b.allocate(creds, [transport(17), {
        type: Attr.ReservationToken,
        value: token!,
      }]);
      assert.equal(r2.cls, Class.Success);
      assert.equal(
        decodeXorAddress(getAttr(r2, Attr.XorRelayedAddress), r2.transactionId)!.port,
        port + 1,
      );
      // A token is good once.
      const c = await Client.open(server);
      try {
        assert.equal(
          errorCode(
            await c.allocate(creds, [transport(17), {
              type: Attr.ReservationToken,
              value: token!,
            }]),
          ),
          508,
        );
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("garbage, truncated and oversized datagrams do not disturb the server", async () => {
  await withServer({}, async (server) => {
    const c = await Client.open(server);
    try {
      await c.allocate(turnCredentials(SECRET, Date.now()));
      const junk: Uint8Array[] = [
        new Uint8Array(0),
        new Uint8Array([1]),
        crypto.getRandomValues(new Uint8Array(1000)),
        new Uint8Array(60_000).fill(0x41), // far past any MTU
        new Uint8Array([0x40, 0x00, 0xff, 0xff, 1, 2]), // ChannelData claiming 65535 bytes
        new Uint8Array([0, 1, 0xff, 0xfc, 0x21, 0x12, 0xa4, 0x42, ...new Array(12).fill(0)]),
        new Uint8Array([
          0,
          3,
          0,
          8,
          0x21,
          0x12,
          0xa4,
          0x42,
          ...new Array(12).fill(0),
          0,
          6,
          0,
          200,
        ]),
        sendIndication(loopback(1), new Uint8Array(0)).subarray(0, 30),
        new Uint8Array([0x80, 0, 0, 0]),
      ];
      const big = new Uint8Array(20 + 60_000);
      big.set([0x00, 0x03, 0xea, 0x60, 0x21, 0x12, 0xa4, 0x42]); // Allocate with 60000 bytes
      junk.push(big);
      for (let i = 0; i < 200; i++) {
        const b = encodeStun({
          method: [1, 3, 4, 6, 8, 9][i % 6],
          cls: i % 4,
          transactionId: crypto.getRandomValues(new Uint8Array(12)),
          attributes: [{
            type: [Attr.XorPeerAddress, Attr.ChannelNumber, Attr.Lifetime, Attr.Data][i % 4],
            value: crypto.getRandomValues(new Uint8Array(i % 23)),
          }],
        });
        junk.push(b);
      }
      for (const j of junk) c.send(j);
      const r = await c.request(Method.Binding, []);
      assert.equal(r.cls, Class.Success);
      const still = await c.request(Method.Refresh, []);
      assert.equal(still.cls, Class.Success);
      assert.equal(server.stats().allocations, 1);
    } finally {
      await c.close();
    }
  });
});

// --- Interop with coturn's command-line clients (Debian package coturn) ---

const coturn = requireTool("turnutils_uclient", "turnutils_stunclient");

async function run(cmd: string, args: string[], timeoutMs = 60_000) {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test(
  coturn.title("turnutils_stunclient gets its reflexive address"),
  { ignore: coturn.ignore },
  async () => {
    await withServer({}, async (server) => {
      const r = await run("turnutils_stunclient", ["-p", String(server.port), "127.0.0.1"]);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /UDP reflexive addr: 127\.0\.0\.1:\d+/);
    });
  },
);

/** Totals of a turnutils_uclient run: messages sent and received, lost packets. */
function uclientTotals(out: string) {
  const totals = [...out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].pop();
  const lost = /Total lost packets (\d+)/.exec(out);
  return {
    sent: Number(totals?.[1] ?? -1),
    received: Number(totals?.[2] ?? -1),
    lost: Number(lost?.[1] ?? -1),
  };
}

for (
  const [mode, flags] of [
    ["channels", []],
    ["Send/Data indications", ["-s"]],
    ["channels with RTCP pairs (EVEN-PORT, RESERVATION-TOKEN)", ["-z", "10"]],
  ] as [string, string[]][]
) {
  Deno.test(
    coturn.title(`turnutils_uclient relays client-to-client through ${mode}`),
    { ignore: coturn.ignore },
    async () => {
      await withServer({}, async (server) => {
        const { username, password } = turnCredentials(SECRET, Date.now());
        const n = 40, len = 300;
        const r = await run("turnutils_uclient", [
          "-y",
          ...(flags.includes("-z") ? [] : ["-c", "-z", "5"]),
          ...flags,
          "-n",
          String(n),
          "-l",
          String(len),
          "-u",
          username,
          "-w",
          password,
          "-p",
          String(server.port),
          "127.0.0.1",
        ]);
        assert.equal(r.code, 0, r.text);
        const t = uclientTotals(r.text);
        assert.ok(t.sent >= 2 * n, `too few messages sent: ${r.text}`);
        assert.equal(t.received, t.sent, r.text);
        assert.equal(t.lost, 0, r.text);
        const s = server.stats();
        assert.ok(s.bytesToPeers >= t.sent * len, `relay carried ${s.bytesToPeers} bytes`);
        assert.ok(s.bytesToClients >= t.sent * len, `relay carried ${s.bytesToClients} bytes`);
      });
    },
  );
}

Deno.test(coturn.title("turnutils_uclient with a wrong password cannot allocate"), {
  ignore: coturn.ignore,
}, async () => {
  await withServer({}, async (server) => {
    const { username } = turnCredentials(SECRET, Date.now());
    const r = await run("turnutils_uclient", [
      "-y",
      "-c",
      "-n",
      "2",
      "-u",
      username,
      "-w",
      "wrong",
      "-p",
      String(server.port),
      "127.0.0.1",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.text, /Cannot complete Allocation/);
    assert.equal(server.stats().allocations, 0);
    assert.equal(server.stats().bytesToPeers, 0);
  });
});

Deno.test("dual-stack relay: an IPv4 peer named IPv4-mapped gets its permission and channel both ways", async () => {
  // A relay socket on "::" sees IPv4 peers as ::ffff:a.b.c.d; an IPv6 allocation names them so
  // too. The permission and channel for ::ffff:127.0.0.1 must cover what 127.0.0.1 sends back.
  await withServer({ host: "::1", relayHost: "::", relayAddress: "::1" }, async (server) => {
    const c = await Client.open(server, "::1");
    const peer = await Endpoint.open("127.0.0.1");
    try {
      const alloc = await c.allocate(turnCredentials(SECRET, Date.now()));
      const relayed = decodeXorAddress(
        getAttr(alloc, Attr.XorRelayedAddress),
        alloc.transactionId,
      )!;
      assert.equal(relayed.family, 6);
      const mapped: TransportAddress = { family: 6, ip: "::ffff:127.0.0.1", port: peer.port };
      await permit(c, mapped);
      c.send(sendIndication(mapped, utf8("to the v4 peer")));
      const got = await peer.recv();
      assert.equal(text(got?.data), "to the v4 peer");

      peer.send(utf8("from the v4 peer"), relayed.port);
      const back = await c.ep.recv(2000, (d) => decodeStun(d)?.method === Method.Data);
      assert.ok(back, "the peer's answer did not come back as a Data indication");
      const di = decodeStun(back.data)!;
      assert.equal(text(getAttr(di, Attr.Data)), "from the v4 peer");
      // Named as the client named it: in the allocation's family.
      assert.deepEqual(
        decodeXorAddress(getAttr(di, Attr.XorPeerAddress), di.transactionId),
        mapped,
      );

      assert.equal(await channelBind(c, 0x4000, mapped), null);
      c.send(encodeChannelData(0x4000, utf8("channel out")));
      assert.equal(text((await peer.recv())?.data), "channel out");
      peer.send(utf8("channel back"), relayed.port);
      const cd = await c.ep.recv(2000, (d) => (d[0] & 0xc0) === 0x40);
      assert.ok(cd, "the peer's answer did not come back over the channel");
      assert.deepEqual(decodeChannelData(cd.data), { channel: 0x4000, data: utf8("channel back") });
    } finally {
      await c.close();
      await peer.close();
    }
  });
});
