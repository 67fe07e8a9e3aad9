// A DNS stub client (RFC 1035) that asks exactly one server: used when dns_server is set, so
// that nothing else answers. Deno.resolveDns would also consult /etc/hosts and answer names
// under localhost and reverse names under 127.0.0.0/8 by itself, even with a name server given.
// UDP first; a truncated answer (TC) is asked again over TCP (RFC 7766 §5).

import * as dgram from "node:dgram";
import * as net from "node:net";
import { Buffer } from "node:buffer";

export const RR = { A: 1, PTR: 12, MX: 15, TXT: 16, AAAA: 28 } as const;
export type RrType = keyof typeof RR;

export type RrData =
  | { type: "A" | "AAAA" | "PTR"; value: string }
  | { type: "MX"; preference: number; exchange: string }
  | { type: "TXT"; strings: string[] };

/** NOERROR with records (maybe none: NODATA), or NXDOMAIN. Other failures throw. */
export interface DnsAnswer {
  nxdomain: boolean;
  records: RrData[];
}

export interface DnsServer {
  ip: string;
  port: number;
}

/** "ip", "ip:port", "[v6]:port" or a bare IPv6 address; port 53 when not given. */
export function parseDnsServer(text: string): DnsServer {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) return { ip: bracket[1], port: Number(bracket[2] ?? 53) };
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(text);
  if (v4) return { ip: v4[1], port: Number(v4[2] ?? 53) };
  if (net.isIPv6(text)) return { ip: text, port: 53 };
  throw new Error(`not a DNS server address: "${text}" (expected ip or ip:port)`);
}

const RCODE_NAMES: Record<number, string> = {
  1: "FORMERR",
  2: "SERVFAIL",
  4: "NOTIMP",
  5: "REFUSED",
};

export function encodeQuery(id: number, name: string, type: RrType): Uint8Array {
  const labels = name.replace(/\.$/, "").split(".").filter((l) => l !== "");
  const parts: number[] = [];
  for (const label of labels) {
    const bytes = new TextEncoder().encode(label);
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`bad DNS label in "${name}"`);
    parts.push(bytes.length, ...bytes);
  }
  parts.push(0);
  if (parts.length > 255) throw new Error(`DNS name too long: "${name}"`);
  const out = new Uint8Array(12 + parts.length + 4);
  const v = new DataView(out.buffer);
  v.setUint16(0, id);
  v.setUint16(2, 0x0100); // RD: a recursive server may resolve for us
  v.setUint16(4, 1); // QDCOUNT
  out.set(parts, 12);
  v.setUint16(12 + parts.length, RR[type]);
  v.setUint16(14 + parts.length, 1); // IN
  return out;
}

class Reader {
  at = 0;
  constructor(readonly buf: Uint8Array) {}
  #v = () => new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  need(n: number) {
    if (this.at + n > this.buf.length) throw new Error("DNS answer cut short");
  }
  u8() {
    this.need(1);
    return this.buf[this.at++];
  }
  u16() {
    this.need(2);
    const n = this.#v().getUint16(this.at);
    this.at += 2;
    return n;
  }
  u32() {
    this.need(4);
    const n = this.#v().getUint32(this.at);
    this.at += 4;
    return n;
  }
  bytes(n: number) {
    this.need(n);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  /** A possibly compressed name (RFC 1035 §4.1.4); pointers may only go backwards. */
  name(): string {
    const labels: string[] = [];
    let pos = this.at;
    let jumped = false;
    let hops = 0;
    for (;;) {
      if (pos >= this.buf.length) throw new Error("DNS answer cut short");
      const len = this.buf[pos];
      if ((len & 0xc0) === 0xc0) {
        if (pos + 1 >= this.buf.length) throw new Error("DNS answer cut short");
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1];
        if (target >= pos || ++hops > 64) throw new Error("bad DNS name compression");
        if (!jumped) this.at = pos + 2;
        jumped = true;
        pos = target;
        continue;
      }
      if (len & 0xc0) throw new Error("bad DNS label type");
      if (len === 0) {
        if (!jumped) this.at = pos + 1;
        return labels.join(".");
      }
      if (pos + 1 + len > this.buf.length) throw new Error("DNS answer cut short");
      labels.push(new TextDecoder().decode(this.buf.subarray(pos + 1, pos + 1 + len)));
      pos += 1 + len;
    }
  }
}

function ipv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // The longest run of two or more zero groups becomes "::" (RFC 5952 §4.2).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Parses an answer to `id`/`name`/`type`; records of other types (CNAMEs) are skipped. */
export function decodeAnswer(
  buf: Uint8Array,
  id: number,
  name: string,
  type: RrType,
): DnsAnswer & { truncated: boolean } {
  const r = new Reader(buf);
  if (r.u16() !== id) throw new Error("DNS answer with a different id");
  const flags = r.u16();
  if (!(flags & 0x8000)) throw new Error("DNS message is not an answer");
  const truncated = (flags & 0x0200) !== 0;
  const rcode = flags & 0x0f;
  const qd = r.u16(), an = r.u16();
  r.u16(); // NSCOUNT
  r.u16(); // ARCOUNT
  if (qd !== 1) throw new Error("DNS answer without our question");
  const qname = r.name();
  const qtype = r.u16();
  r.u16(); // QCLASS
  if (qname.toLowerCase() !== name.replace(/\.$/, "").toLowerCase() || qtype !== RR[type]) {
    throw new Error("DNS answer to another question");
  }
  if (rcode === 3) return { nxdomain: true, records: [], truncated };
  if (rcode !== 0) throw new Error(`server answered ${RCODE_NAMES[rcode] ?? `RCODE ${rcode}`}`);
  const records: RrData[] = [];
  if (truncated) return { nxdomain: false, records, truncated };
  for (let i = 0; i < an; i++) {
    r.name();
    const rtype = r.u16();
    r.u16(); // class
    r.u32(); // TTL
    const len = r.u16();
    const end = r.at + len;
    r.need(len);
    if (rtype === RR[type]) {
      switch (type) {
        case "A":
          if (len !== 4) throw new Error("bad A record");
          records.push({ type, value: [...r.bytes(4)].join(".") });
          break;
        case "AAAA":
          if (len !== 16) throw new Error("bad AAAA record");
          records.push({ type, value: ipv6(r.bytes(16)) });
          break;
        case "PTR":
          records.push({ type, value: r.name() });
          break;
        case "MX":
          records.push({ type, preference: r.u16(), exchange: r.name() });
          break;
        case "TXT": {
          const strings: string[] = [];
          while (r.at < end) strings.push(new TextDecoder().decode(r.bytes(r.u8())));
          records.push({ type, strings });
          break;
        }
      }
      if (r.at !== end) throw new Error(`bad ${type} record length`);
    }
    r.at = end;
  }
  return { nxdomain: false, records, truncated };
}

function udpExchange(server: DnsServer, query: Uint8Array, timeoutMs: number, id: number) {
  return new Promise<Uint8Array>((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(server.ip) ? "udp6" : "udp4");
    const done = (err: Error | null, msg?: Uint8Array) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error("no answer in time")), timeoutMs);
    sock.on("error", (err) => done(err));
    sock.on("message", (msg: Buffer, from: dgram.RemoteInfo) => {
      // Only the server's answer to this query counts; anything else is dropped.
      if (from.port !== server.port || msg.length < 2 || msg.readUInt16BE(0) !== id) return;
      done(null, new Uint8Array(msg));
    });
    sock.send(query, server.port, server.ip, (err) => {
      if (err) done(err);
    });
  });
}

function tcpExchange(server: DnsServer, query: Uint8Array, timeoutMs: number) {
  return new Promise<Uint8Array>((resolve, reject) => {
    const sock = net.connect({ host: server.ip, port: server.port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, msg?: Uint8Array) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error("no answer in time")), timeoutMs);
    sock.on("error", (err) => done(err));
    sock.on("close", () => done(new Error("connection closed before the answer")));
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        done(null, new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      }
    });
    const framed = Buffer.alloc(2 + query.length);
    framed.writeUInt16BE(query.length, 0);
    framed.set(query, 2);
    sock.write(framed);
  });
}

/**
 * Asks `server` for `type` records of `name`: over UDP (up to `tries` times, `timeoutMs` each),
 * then over TCP when the answer was truncated. Throws when the server does not answer usefully.
 */
export async function queryDns(
  server: DnsServer,
  name: string,
  type: RrType,
  options: { timeoutMs?: number; tries?: number } = {},
): Promise<DnsAnswer> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const tries = options.tries ?? 3;
  let lastError: unknown;
  for (let i = 0; i < tries; i++) {
    const id = crypto.getRandomValues(new Uint16Array(1))[0];
    const query = encodeQuery(id, name, type);
    try {
      let answer = decodeAnswer(await udpExchange(server, query, timeoutMs, id), id, name, type);
      if (answer.truncated) {
        answer = decodeAnswer(await tcpExchange(server, query, timeoutMs), id, name, type);
      }
      return { nxdomain: answer.nxdomain, records: answer.records };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}
