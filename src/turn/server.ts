// An embedded TURN server over UDP (RFC 5766 / RFC 8656, STUN per RFC 5389) so Delta Chat calls
// work through a tern relay alone. Binding requests are answered without authentication; the
// TURN methods use long-term credentials in the TURN REST API scheme (see credentials.ts).
// Every allocation gets its own UDP socket on relayHost; permissions, channels and allocations
// expire by the clock and are swept on a timer. Nothing from the network can throw out of here.

import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "../log/mod.ts";
import { silentLogger } from "../log/mod.ts";
import { noteActivity } from "../net/activity.ts";
import { turnKeyFor } from "./credentials.ts";
import { isRelayablePeer } from "./peer_policy.ts";
import {
  Attr,
  checkFingerprint,
  checkIntegrity,
  Class,
  decodeChannelData,
  decodeStun,
  decodeXorAddress,
  encodeChannelData,
  encodeErrorCode,
  encodeStun,
  encodeUnknownAttributes,
  encodeXorAddress,
  firstByte,
  getAttr,
  getAttrs,
  Method,
  normalizeIp,
  readU32,
  text,
  u32,
  unknownRequired,
  utf8,
} from "./stun.ts";
import type { DecodedStun, StunAttribute, TransportAddress } from "./stun.ts";

export const DEFAULT_LIFETIME_SEC = 600;
export const MAX_LIFETIME_SEC = 3600;
export const PERMISSION_LIFETIME_SEC = 300;
export const CHANNEL_LIFETIME_SEC = 600;
/** After a channel binding expires, its number and peer stay reserved this long (RFC 5766 11). */
const CHANNEL_COOLDOWN_SEC = 300;
const RESERVATION_LIFETIME_SEC = 30;
const MAX_PERMISSIONS = 256;
/** Channels per allocation (bound or cooling down): a call needs a few; RFC 5766 allows 16384,
 *  each a map entry that stays 15 minutes, so one allocation could hold thousands. */
const MAX_CHANNELS = 256;
const UDP = 17;

export interface TurnServerOptions {
  /** Address the STUN/TURN listener binds: "0.0.0.0", "::" (both families), "127.0.0.1". */
  host: string;
  /** UDP port of the listener; 0 picks a free one. */
  port: number;
  /** IP the relay sockets bind to. */
  relayHost: string;
  /** IP advertised in XOR-RELAYED-ADDRESS; default relayHost. Needed when relayHost is a
   *  wildcard ("0.0.0.0") or the host sits behind a 1:1 NAT. */
  relayAddress?: string;
  /** The realm of the long-term credentials: the mail domain. */
  realm: string;
  /** The TURN REST API shared secret, read on every request (rotation takes effect at once). */
  secret: () => string;
  now?: () => number;
  log?: Logger;
  /** Allocations in all; beyond it Allocate fails with 486. Default 1000. */
  maxAllocations?: number;
  /** Allocations per client IP; beyond it Allocate fails with 486. Default 100. */
  maxAllocationsPerIp?: number;
  /** Inclusive port range for relay sockets; default: ephemeral ports from the OS. */
  allocationPortRange?: [number, number];
  /** Whether a peer IP may be relayed to (else 403 Forbidden); default: public unicast
   *  addresses only (peer_policy.ts). The advertised relay address itself is always allowed,
   *  so two clients of this server can reach each other through it. */
  allowPeer?: (ip: string) => boolean;
  /** Whether any port at the relay's own address may be a peer. Default false: only the relay
   *  ports of live allocations, so a client cannot reach the TURN listener itself (a loop whose
   *  requests come from the server's address) or other UDP services of the host through it. */
  ownAddressAnyPort?: boolean;
  /** Answers without MESSAGE-INTEGRITY (Binding, 401 challenges, 400/420/438) per client IP
   *  and second; default 50. They are what a spoofed source gets, several times the request's
   *  size, so this bounds what the server reflects at any one address. */
  unauthenticatedPerSecond?: number;
  /** Such answers at once above the rate; default 200. */
  unauthenticatedBurst?: number;
  /** How often expired state is swept; default 1000 ms. */
  sweepIntervalMs?: number;
  /** How long a NONCE stays valid before 438 Stale Nonce; default 3600 s. */
  nonceLifetimeSec?: number;
}

export interface TurnStats {
  allocations: number;
  permissions: number;
  channels: number;
  /** Payload bytes relayed client to peer and peer to client since start. */
  bytesToPeers: number;
  bytesToClients: number;
}

export interface TurnServer {
  readonly host: string;
  readonly port: number;
  stats(): TurnStats;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  420: "Unknown Attribute",
  437: "Allocation Mismatch",
  438: "Stale Nonce",
  440: "Address Family not Supported",
  441: "Wrong Credentials",
  442: "Unsupported Transport Protocol",
  443: "Peer Address Family Mismatch",
  486: "Allocation Quota Reached",
  500: "Server Error",
  508: "Insufficient Capacity",
};

/** Comprehension-required attributes the server understands (others get 420). */
const KNOWN = new Set<number>([
  Attr.MappedAddress,
  Attr.Username,
  Attr.MessageIntegrity,
  Attr.ErrorCode,
  Attr.UnknownAttributes,
  Attr.Realm,
  Attr.Nonce,
  Attr.XorMappedAddress,
  Attr.ChannelNumber,
  Attr.Lifetime,
  Attr.XorPeerAddress,
  Attr.Data,
  Attr.XorRelayedAddress,
  Attr.RequestedAddressFamily,
  Attr.EvenPort,
  Attr.RequestedTransport,
  Attr.ReservationToken,
  Attr.Priority,
  Attr.UseCandidate,
]);

interface Client {
  /** As the socket reported it (used to send back). */
  address: string;
  port: number;
  /** Normalized (IPv4-mapped IPv6 shown as IPv4). */
  ip: string;
  family: 4 | 6;
  key: string;
}

interface Channel {
  /** As the client named it (where datagrams are sent). */
  peer: TransportAddress;
  /** peerIp() of it: what the permission is kept under. */
  ip: string;
  /** ip|port */
  peerKey: string;
  expiresAt: number;
}

interface Allocation {
  client: Client;
  username: string;
  transactionId: string;
  response: Uint8Array;
  socket: dgram.Socket;
  relayed: TransportAddress;
  expiresAt: number;
  /** Peer IP (peerIp()) -> expiry (ms). */
  permissions: Map<string, number>;
  channels: Map<number, Channel>;
  channelByPeer: Map<string, number>;
  closed: boolean;
}

interface Reservation {
  /** The client IP whose quota it counts against. */
  ip: string;
  socket: dgram.Socket;
  port: number;
  expiresAt: number;
}

function socketType(ip: string): "udp4" | "udp6" {
  return ip.includes(":") ? "udp6" : "udp4";
}

function bindUdp(type: "udp4" | "udp6", address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type, ipv6Only: false });
    const fail = (err: Error) => {
      try {
        s.close();
      } catch { /* not bound */ }
      reject(err);
    };
    s.once("error", fail);
    s.bind({ address, port, exclusive: true }, () => {
      s.off("error", fail);
      resolve(s);
    });
  });
}

/**
 * The one form a peer IP is known by in permissions and channels: a relay socket on "::" sees
 * an IPv4 peer as ::ffff:a.b.c.d, and a client of an IPv6 allocation names it so, but the same
 * host must match either way (RFC 4291 2.5.5.2).
 */
function peerIp(ip: string): string {
  return normalizeIp(ip)?.ip ?? ip;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export async function startTurnServer(options: TurnServerOptions): Promise<TurnServer> {
  const now = options.now ?? Date.now;
  const log = options.log ?? silentLogger;
  const realm = options.realm;
  const maxAllocations = options.maxAllocations ?? 1000;
  const maxPerIp = options.maxAllocationsPerIp ?? 100;
  const policy = options.allowPeer ?? isRelayablePeer;
  const nonceLifetime = options.nonceLifetimeSec ?? 3600;
  const advertised = normalizeIp(options.relayAddress ?? options.relayHost);
  if (!advertised) throw new Error(`TURN relay address is not an IP: ${options.relayHost}`);
  const allowPeer = (ip: string) => normalizeIp(ip)?.ip === advertised.ip || policy(ip);
  if (advertised.ip === "0.0.0.0" || advertised.ip === "::") {
    throw new Error("TURN needs relayAddress when relayHost is a wildcard address");
  }
  // The server's own addresses: peers there may only be relay ports (see ownAddressAnyPort).
  const ownIps = new Set<string>([advertised.ip, "0.0.0.0", "::"]);
  for (const ip of [options.relayHost, options.host]) {
    const n = normalizeIp(ip);
    if (n) ownIps.add(n.ip);
  }
  /** Relay ports of live allocations: the only ports at an own address a client may reach. */
  const relayPorts = new Set<number>();
  const peerPortAllowed = (peer: TransportAddress) =>
    options.ownAddressAnyPort === true || !ownIps.has(normalizeIp(peer.ip)?.ip ?? "") ||
    relayPorts.has(peer.port);
  const relayFamily = advertised.family;
  const relayType = socketType(options.relayHost);
  const range = options.allocationPortRange;
  const nonceKey = randomBytes(32);

  const allocations = new Map<string, Allocation>();
  const pending = new Set<string>();
  /** Per client IP: live allocations, Allocates still binding, and reserved ports. */
  const perIp = new Map<string, number>();
  const hold = (ip: string, n: number) => perIp.set(ip, (perIp.get(ip) ?? 0) + n);
  const release = (ip: string, n: number) => {
    const left = (perIp.get(ip) ?? n) - n;
    if (left > 0) perIp.set(ip, left);
    else perIp.delete(ip);
  };
  const reservations = new Map<string, Reservation>();
  const inflight = new Set<Promise<void>>();
  const closing = new Set<Promise<void>>();
  const counters = { bytesToPeers: 0, bytesToClients: 0 };
  let closed = false;

  const main = await bindUdp(socketType(options.host), options.host, options.port);
  main.on("error", (err) => log.error("turn socket error", { err }));
  const boundPort = main.address().port;

  // --- Answers to unauthenticated requests: a token bucket per client IP ---
  const unauthRate = options.unauthenticatedPerSecond ?? 50;
  const unauthBurst = Math.max(1, options.unauthenticatedBurst ?? 200);
  const MAX_TRACKED_IPS = 100_000;
  const unauthBuckets = new Map<string, { tokens: number; at: number }>();
  const refill = (b: { tokens: number; at: number }, t: number) => {
    b.tokens = Math.min(unauthBurst, b.tokens + ((t - b.at) / 1000) * unauthRate);
    b.at = t;
  };
  /** Whether an answer without integrity may go to the client's IP now (spends a token). */
  const mayAnswerUnauthenticated = (client: Client): boolean => {
    const t = now();
    let b = unauthBuckets.get(client.ip);
    if (!b) {
      // Under a flood from very many (spoofed) sources, new ones wait for the sweep.
      if (unauthBuckets.size >= MAX_TRACKED_IPS) return false;
      b = { tokens: unauthBurst, at: t };
      unauthBuckets.set(client.ip, b);
    }
    refill(b, t);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };

  const closeSocket = (s: dgram.Socket) => {
    const p = new Promise<void>((resolve) => {
      try {
        s.close(() => resolve());
      } catch {
        resolve();
      }
    });
    closing.add(p);
    p.finally(() => closing.delete(p));
  };

  const sendTo = (client: Client, bytes: Uint8Array) => {
    if (closed) return;
    try {
      main.send(bytes, client.port, client.address, () => {});
    } catch { /* unreachable client, closed socket: drop */ }
  };

  // --- Nonces: expiry (8 hex digits, unix seconds) + MAC over it and the client IP ---
  const nonceMac = (expiry: string, ip: string) =>
    createHmac("sha256", nonceKey).update(`${expiry}|${ip}`).digest("hex").slice(0, 24);
  const makeNonce = (client: Client) => {
    const expiry = (Math.floor(now() / 1000) + nonceLifetime).toString(16).padStart(8, "0");
    return expiry + nonceMac(expiry, client.ip);
  };
  const nonceValid = (nonce: string, client: Client) => {
    if (!/^[0-9a-f]{32}$/.test(nonce)) return false;
    const expiry = nonce.slice(0, 8);
    const want = Buffer.from(nonceMac(expiry, client.ip));
    if (!timingSafeEqual(want, Buffer.from(nonce.slice(8)))) return false;
    return parseInt(expiry, 16) * 1000 > now();
  };

  // --- Allocation bookkeeping ---
  const deleteAllocation = (a: Allocation) => {
    if (a.closed) return;
    a.closed = true;
    allocations.delete(a.client.key);
    relayPorts.delete(a.relayed.port);
    release(a.client.ip, 1);
    closeSocket(a.socket);
    log.debug("turn allocation ended", { relayPort: a.relayed.port });
  };

  const permitted = (a: Allocation, ip: string, t: number) => (a.permissions.get(ip) ?? 0) > t;

  const pickPort = (even: boolean): number => {
    if (!range) return 0;
    const [lo, hi] = range;
    let p = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (even && p % 2) p = p + 1 <= hi ? p + 1 : p - 1;
    return p;
  };

  /** A relay socket (even port, and the next one reserved, when asked); null when none binds. */
  const openRelay = async (
    even: boolean,
    reserve: boolean,
    ip: string,
  ): Promise<{ socket: dgram.Socket; port: number; reserved?: Reservation } | null> => {
    for (let attempt = 0; attempt < 40; attempt++) {
      let s: dgram.Socket;
      try {
        s = await bindUdp(relayType, options.relayHost, pickPort(even));
      } catch {
        continue;
      }
      const port = s.address().port;
      if (even && port % 2 !== 0) {
        closeSocket(s);
        continue;
      }
      if (!reserve) return { socket: s, port };
      try {
        const r = await bindUdp(relayType, options.relayHost, port + 1);
        r.on("error", () => {});
        return {
          socket: s,
          port,
          reserved: {
            ip,
            socket: r,
            port: port + 1,
            expiresAt: now() + RESERVATION_LIFETIME_SEC * 1000,
          },
        };
      } catch {
        closeSocket(s);
      }
    }
    return null;
  };

  const onPeerData = (a: Allocation, data: Uint8Array, rinfo: dgram.RemoteInfo) => {
    try {
      const t = now();
      if (a.closed || t >= a.expiresAt) return;
      const peer = normalizeIp(rinfo.address);
      if (!peer || !permitted(a, peer.ip, t)) return;
      // Named to the client in its allocation's family, as it named the peer.
      const named: TransportAddress = peer.family === 4 && relayFamily === 6
        ? { family: 6, ip: `::ffff:${peer.ip}`, port: rinfo.port }
        : { family: peer.family, ip: peer.ip, port: rinfo.port };
      const ch = a.channelByPeer.get(`${peer.ip}|${rinfo.port}`);
      const binding = ch === undefined ? undefined : a.channels.get(ch);
      if (ch !== undefined && binding && binding.expiresAt > t) {
        sendTo(a.client, encodeChannelData(ch, data));
      } else {
        if (data.length > 0xffff - 48) return;
        const tid = randomBytes(12);
        sendTo(
          a.client,
          encodeStun({
            method: Method.Data,
            cls: Class.Indication,
            transactionId: tid,
            attributes: [
              {
                type: Attr.XorPeerAddress,
                value: encodeXorAddress(named, tid),
              },
              { type: Attr.Data, value: data },
            ],
          }),
        );
      }
      counters.bytesToClients += data.length;
    } catch (err) {
      log.debug("turn peer datagram dropped", { err });
    }
  };

  const relayToPeer = (a: Allocation, peer: TransportAddress, data: Uint8Array) => {
    // Checked on every datagram too: a channel may outlive the allocation whose port it named.
    if (!peerPortAllowed(peer)) return;
    try {
      a.socket.send(data, peer.port, peer.ip, () => {});
      counters.bytesToPeers += data.length;
    } catch { /* dropped */ }
  };

  // --- Request handling ---
  type Reply = {
    ok: (attrs: StunAttribute[], key: Uint8Array) => void;
    error: (code: number, key?: Uint8Array, attrs?: StunAttribute[]) => void;
  };

  const replier = (msg: DecodedStun, client: Client): Reply => {
    const fingerprint = msg.fingerprintAt >= 0;
    const send = (cls: number, attributes: StunAttribute[], key?: Uint8Array) => {
      if (key === undefined && !mayAnswerUnauthenticated(client)) return;
      sendTo(
        client,
        encodeStun(
          { method: msg.method, cls, transactionId: msg.transactionId, attributes },
          { integrityKey: key, fingerprint },
        ),
      );
    };
    return {
      ok: (attrs, key) => send(Class.Success, attrs, key),
      error: (code, key, attrs = []) =>
        send(Class.Error, [
          { type: Attr.ErrorCode, value: encodeErrorCode(code, REASONS[code] ?? "Error") },
          ...attrs,
        ], key),
    };
  };

  /** RFC 5389 10.2.2: the username and key, or null after answering 400/401/438. */
  const authenticate = (
    msg: DecodedStun,
    client: Client,
    reply: Reply,
  ): { username: string; key: Uint8Array } | null => {
    const challenge = (): StunAttribute[] => [
      { type: Attr.Realm, value: utf8(realm) },
      { type: Attr.Nonce, value: utf8(makeNonce(client)) },
    ];
    if (msg.integrityAt < 0) {
      reply.error(401, undefined, challenge());
      return null;
    }
    const username = text(getAttr(msg, Attr.Username));
    const nonce = text(getAttr(msg, Attr.Nonce));
    if (username === undefined || nonce === undefined || !getAttr(msg, Attr.Realm)) {
      reply.error(400);
      return null;
    }
    if (!nonceValid(nonce, client)) {
      reply.error(438, undefined, challenge());
      return null;
    }
    const key = turnKeyFor(options.secret(), username, realm, now());
    if (!key || !checkIntegrity(msg, key)) {
      reply.error(401, undefined, challenge());
      return null;
    }
    return { username, key };
  };

  const requestedLifetime = (msg: DecodedStun): number | null =>
    readU32(getAttr(msg, Attr.Lifetime));

  const onAllocate = async (
    msg: DecodedStun,
    client: Client,
    reply: Reply,
    auth: { username: string; key: Uint8Array },
  ) => {
    const { key } = auth;
    const existing = allocations.get(client.key);
    if (existing) {
      if (existing.transactionId === hex(msg.transactionId)) sendTo(client, existing.response);
      else reply.error(437, key);
      return;
    }
    if (pending.has(client.key)) return; // still binding; the retransmission gets the answer
    const transport = firstByte(getAttr(msg, Attr.RequestedTransport));
    if (transport === null) return reply.error(400, key);
    if (transport !== UDP) return reply.error(442, key);
    const evenPort = getAttr(msg, Attr.EvenPort);
    const token = getAttr(msg, Attr.ReservationToken);
    const family = getAttr(msg, Attr.RequestedAddressFamily);
    if (token && (evenPort || family)) return reply.error(400, key);
    if (token && token.length !== 8) return reply.error(400, key);
    if (evenPort && evenPort.length < 1) return reply.error(400, key);
    if (family) {
      const f = firstByte(family);
      if (f !== 0x01 && f !== 0x02) return reply.error(440, key);
      if ((f === 0x01 ? 4 : 6) !== relayFamily) return reply.error(440, key);
    }
    // A reservation token hands over a socket that counted against its owner's quota already.
    let fromToken: Reservation | null = null;
    if (token) {
      const r = reservations.get(hex(token));
      if (r) {
        reservations.delete(hex(token));
        release(r.ip, 1);
        if (r.expiresAt > now()) fromToken = r;
        else closeSocket(r.socket);
      }
    }
    // Reserved ports count as allocations: else allocating with EVEN-PORT R and deleting again
    // would pile up sockets beyond every quota. Allocates still binding count too, so a burst
    // from many ports of one IP cannot pass the per-IP check all at once.
    const reserve = !token && ((evenPort?.[0] ?? 0) & 0x80) !== 0;
    const need = reserve ? 2 : 1;
    if (
      allocations.size + pending.size + reservations.size + need > maxAllocations ||
      (perIp.get(client.ip) ?? 0) + need > maxPerIp
    ) {
      if (fromToken) closeSocket(fromToken.socket);
      return reply.error(486, key);
    }
    const asked = requestedLifetime(msg);
    const lifetime = asked === null
      ? DEFAULT_LIFETIME_SEC
      : Math.max(DEFAULT_LIFETIME_SEC, Math.min(asked, MAX_LIFETIME_SEC));

    let relay: { socket: dgram.Socket; port: number; reserved?: Reservation } | null;
    pending.add(client.key);
    hold(client.ip, need);
    try {
      relay = token ? fromToken : await openRelay(evenPort !== undefined, reserve, client.ip);
    } finally {
      pending.delete(client.key);
      release(client.ip, need);
    }
    if (closed) {
      if (relay) {
        closeSocket(relay.socket);
        if (relay.reserved) closeSocket(relay.reserved.socket);
      }
      return;
    }
    if (!relay) return reply.error(508, key);
    const attrs: StunAttribute[] = [];
    const relayed: TransportAddress = { family: relayFamily, ip: advertised.ip, port: relay.port };
    attrs.push({
      type: Attr.XorRelayedAddress,
      value: encodeXorAddress(relayed, msg.transactionId),
    });
    attrs.push({ type: Attr.Lifetime, value: u32(lifetime) });
    if (relay.reserved) {
      const t = randomBytes(8);
      reservations.set(hex(t), relay.reserved);
      hold(client.ip, 1);
      attrs.push({ type: Attr.ReservationToken, value: new Uint8Array(t) });
    }
    attrs.push({
      type: Attr.XorMappedAddress,
      value: encodeXorAddress(
        { family: client.family, ip: client.ip, port: client.port },
        msg.transactionId,
      ),
    });
    const response = encodeStun(
      {
        method: msg.method,
        cls: Class.Success,
        transactionId: msg.transactionId,
        attributes: attrs,
      },
      { integrityKey: key, fingerprint: msg.fingerprintAt >= 0 },
    );
    const a: Allocation = {
      client,
      username: auth.username,
      transactionId: hex(msg.transactionId),
      response,
      socket: relay.socket,
      relayed,
      expiresAt: now() + lifetime * 1000,
      permissions: new Map(),
      channels: new Map(),
      channelByPeer: new Map(),
      closed: false,
    };
    relay.socket.on("message", (data, rinfo) => {
      noteActivity();
      onPeerData(a, data, rinfo);
    });
    relay.socket.on("error", (err) => log.debug("turn relay socket error", { err }));
    allocations.set(client.key, a);
    relayPorts.add(relay.port);
    hold(client.ip, 1);
    log.debug("turn allocation", { relayPort: relay.port, lifetime });
    sendTo(client, response);
  };

  /** The client's allocation for a request, or null after answering 437/441. */
  const allocationFor = (
    client: Client,
    reply: Reply,
    auth: { username: string; key: Uint8Array },
  ): Allocation | null => {
    const a = allocations.get(client.key);
    if (!a || a.closed || a.expiresAt <= now()) {
      reply.error(437, auth.key);
      return null;
    }
    if (a.username !== auth.username) {
      reply.error(441, auth.key);
      return null;
    }
    return a;
  };

  const onRefresh = (
    msg: DecodedStun,
    client: Client,
    reply: Reply,
    auth: { username: string; key: Uint8Array },
  ) => {
    const a = allocationFor(client, reply, auth);
    if (!a) return;
    const asked = requestedLifetime(msg);
    if (asked === 0) {
      deleteAllocation(a);
      return reply.ok([{ type: Attr.Lifetime, value: u32(0) }], auth.key);
    }
    const lifetime = asked === null ? DEFAULT_LIFETIME_SEC : Math.min(asked, MAX_LIFETIME_SEC);
    a.expiresAt = now() + lifetime * 1000;
    reply.ok([{ type: Attr.Lifetime, value: u32(lifetime) }], auth.key);
  };

  /** Validates a peer address for an allocation; answers 400/443/403 and returns null. */
  const checkPeer = (
    value: Uint8Array | undefined,
    msg: DecodedStun,
    reply: Reply,
    key: Uint8Array,
  ): TransportAddress | null => {
    const peer = decodeXorAddress(value, msg.transactionId);
    if (!peer) {
      reply.error(400, key);
      return null;
    }
    if (peer.family !== relayFamily) {
      reply.error(443, key);
      return null;
    }
    if (!allowPeer(peer.ip)) {
      reply.error(403, key);
      return null;
    }
    return peer;
  };

  const onCreatePermission = (
    msg: DecodedStun,
    client: Client,
    reply: Reply,
    auth: { username: string; key: Uint8Array },
  ) => {
    const a = allocationFor(client, reply, auth);
    if (!a) return;
    const values = getAttrs(msg, Attr.XorPeerAddress);
    if (values.length === 0) return reply.error(400, auth.key);
    const peers: TransportAddress[] = [];
    for (const v of values) {
      const p = checkPeer(v, msg, reply, auth.key);
      if (!p) return;
      peers.push(p);
    }
    const ips = peers.map((p) => peerIp(p.ip));
    const added = new Set(ips.filter((ip) => !a.permissions.has(ip)));
    if (a.permissions.size + added.size > MAX_PERMISSIONS) return reply.error(508, auth.key);
    const until = now() + PERMISSION_LIFETIME_SEC * 1000;
    for (const ip of ips) a.permissions.set(ip, until);
    reply.ok([], auth.key);
  };

  const onChannelBind = (
    msg: DecodedStun,
    client: Client,
    reply: Reply,
    auth: { username: string; key: Uint8Array },
  ) => {
    const a = allocationFor(client, reply, auth);
    if (!a) return;
    const num = getAttr(msg, Attr.ChannelNumber);
    const ch = num && num.length === 4 ? (num[0] << 8) | num[1] : -1;
    if (ch < 0x4000 || ch > 0x7fff) return reply.error(400, auth.key);
    const peer = checkPeer(getAttr(msg, Attr.XorPeerAddress), msg, reply, auth.key);
    if (!peer) return;
    if (!peerPortAllowed(peer)) return reply.error(403, auth.key);
    const ip = peerIp(peer.ip);
    const peerKey = `${ip}|${peer.port}`;
    const bound = a.channels.get(ch);
    if (bound && bound.peerKey !== peerKey) return reply.error(400, auth.key);
    const other = a.channelByPeer.get(peerKey);
    if (other !== undefined && other !== ch) return reply.error(400, auth.key);
    if (!a.permissions.has(ip) && a.permissions.size >= MAX_PERMISSIONS) {
      return reply.error(508, auth.key);
    }
    if (!bound && a.channels.size >= MAX_CHANNELS) return reply.error(508, auth.key);
    const t = now();
    a.channels.set(ch, { peer, ip, peerKey, expiresAt: t + CHANNEL_LIFETIME_SEC * 1000 });
    a.channelByPeer.set(peerKey, ch);
    a.permissions.set(ip, t + PERMISSION_LIFETIME_SEC * 1000);
    reply.ok([], auth.key);
  };

  const onSend = (msg: DecodedStun, client: Client) => {
    const a = allocations.get(client.key);
    const t = now();
    if (!a || a.closed || a.expiresAt <= t) return;
    const peer = decodeXorAddress(getAttr(msg, Attr.XorPeerAddress), msg.transactionId);
    const data = getAttr(msg, Attr.Data);
    if (!peer || !data || peer.port === 0 || peer.family !== relayFamily) return;
    if (!permitted(a, peerIp(peer.ip), t)) return;
    relayToPeer(a, peer, data);
  };

  const onChannelData = (buf: Uint8Array, client: Client) => {
    const cd = decodeChannelData(buf);
    if (!cd) return;
    const a = allocations.get(client.key);
    const t = now();
    if (!a || a.closed || a.expiresAt <= t) return;
    const b = a.channels.get(cd.channel);
    if (!b || b.expiresAt <= t || !permitted(a, b.ip, t)) return;
    relayToPeer(a, b.peer, cd.data);
  };

  const onStun = async (msg: DecodedStun, client: Client) => {
    if (msg.cls === Class.Indication) {
      if (msg.method === Method.Send) onSend(msg, client);
      return;
    }
    if (msg.cls !== Class.Request) return;
    const reply = replier(msg, client);
    if (msg.method === Method.Binding) {
      const unknown = unknownRequired(msg, KNOWN);
      if (unknown.length) {
        return reply.error(420, undefined, [
          { type: Attr.UnknownAttributes, value: encodeUnknownAttributes(unknown) },
        ]);
      }
      const mapped = { family: client.family, ip: client.ip, port: client.port };
      if (!mayAnswerUnauthenticated(client)) return;
      return sendTo(
        client,
        encodeStun({
          method: Method.Binding,
          cls: Class.Success,
          transactionId: msg.transactionId,
          attributes: [
            { type: Attr.XorMappedAddress, value: encodeXorAddress(mapped, msg.transactionId) },
          ],
        }, { fingerprint: msg.fingerprintAt >= 0 }),
      );
    }
    const turnMethods: number[] = [
      Method.Allocate,
      Method.Refresh,
      Method.CreatePermission,
      Method.ChannelBind,
    ];
    if (!turnMethods.includes(msg.method)) return reply.error(400);
    const auth = authenticate(msg, client, reply);
    if (!auth) return;
    const unknown = unknownRequired(msg, KNOWN);
    if (unknown.length) {
      return reply.error(420, auth.key, [
        { type: Attr.UnknownAttributes, value: encodeUnknownAttributes(unknown) },
      ]);
    }
    switch (msg.method) {
      case Method.Allocate:
        return await onAllocate(msg, client, reply, auth);
      case Method.Refresh:
        return onRefresh(msg, client, reply, auth);
      case Method.CreatePermission:
        return onCreatePermission(msg, client, reply, auth);
      case Method.ChannelBind:
        return onChannelBind(msg, client, reply, auth);
    }
  };

  main.on("message", (buf: Uint8Array, rinfo: dgram.RemoteInfo) => {
    if (closed) return;
    noteActivity();
    try {
      const n = normalizeIp(rinfo.address);
      if (!n || buf.length < 4) return;
      const client: Client = {
        address: rinfo.address,
        port: rinfo.port,
        ip: n.ip,
        family: n.family,
        key: `${rinfo.address}|${rinfo.port}`,
      };
      const top = buf[0] & 0xc0;
      if (top === 0x40) return onChannelData(buf, client);
      if (top !== 0) return;
      const msg = decodeStun(buf);
      if (!msg || checkFingerprint(msg) === "invalid") return;
      const p = onStun(msg, client).catch((err) => log.debug("turn request failed", { err }));
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    } catch (err) {
      log.debug("turn datagram dropped", { err });
    }
  });

  const sweep = () => {
    const t = now();
    for (const a of [...allocations.values()]) {
      if (a.expiresAt <= t) {
        deleteAllocation(a);
        continue;
      }
      for (const [ip, until] of a.permissions) if (until <= t) a.permissions.delete(ip);
      for (const [ch, b] of a.channels) {
        if (b.expiresAt + CHANNEL_COOLDOWN_SEC * 1000 <= t) {
          a.channels.delete(ch);
          a.channelByPeer.delete(b.peerKey);
        }
      }
    }
    for (const [ip, b] of unauthBuckets) {
      refill(b, t);
      if (b.tokens >= unauthBurst) unauthBuckets.delete(ip);
    }
    for (const [token, r] of reservations) {
      if (r.expiresAt <= t) {
        reservations.delete(token);
        release(r.ip, 1);
        closeSocket(r.socket);
      }
    }
  };
  const timer = setInterval(() => {
    try {
      sweep();
    } catch (err) {
      log.error("turn sweep failed", { err });
    }
  }, options.sweepIntervalMs ?? 1000);

  return {
    host: options.host,
    port: boundPort,
    stats() {
      let permissions = 0, channels = 0;
      const t = now();
      for (const a of allocations.values()) {
        for (const until of a.permissions.values()) if (until > t) permissions++;
        for (const b of a.channels.values()) if (b.expiresAt > t) channels++;
      }
      return { allocations: allocations.size, permissions, channels, ...counters };
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await Promise.allSettled([...inflight]);
      for (const a of [...allocations.values()]) deleteAllocation(a);
      for (const r of reservations.values()) closeSocket(r.socket);
      reservations.clear();
      closeSocket(main);
      while (closing.size) await Promise.allSettled([...closing]);
    },
  };
}
