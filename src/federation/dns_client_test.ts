// The DNS client against a DNS server written here (UDP and TCP on loopback) that answers from a
// table and records every question: what tern asks, it asks that server and nothing else.

import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { decodeAnswer, encodeQuery, parseDnsServer, queryDns, RR } from "./dns_client.ts";
import { DnsError, hostResolver, systemResolver } from "./resolver.ts";
import { route } from "./router.ts";

type Rr = { type: number; rdata: (qnameAt: number) => number[] };

function nameBytes(name: string): number[] {
  const out: number[] = [];
  for (const l of name.split(".").filter(Boolean)) {
    const b = new TextEncoder().encode(l);
    out.push(b.length, ...b);
  }
  return [...out, 0];
}

/** An answer to `query`: each record's owner is a pointer to the question name (offset 12). */
function answer(query: Uint8Array, rcode: number, rrs: Rr[], flags = 0): Uint8Array {
  const qEnd = 12 + query.subarray(12).indexOf(0) + 1 + 4;
  const head = [...query.subarray(0, qEnd)];
  head[2] = 0x81 | (flags >> 8); // QR, RD
  head[3] = 0x80 | rcode | (flags & 0xff); // RA
  head[6] = rrs.length >> 8;
  head[7] = rrs.length & 0xff;
  // No authority or additional records (the question's EDNS OPT record is not echoed).
  head[8] =
    head[9] =
    head[10] =
    head[11] =
      0;
  const body: number[] = [];
  for (const rr of rrs) {
    const rdata = rr.rdata(12);
    body.push(0xc0, 12, rr.type >> 8, rr.type & 0xff, 0, 1, 0, 0, 0, 60);
    body.push(rdata.length >> 8, rdata.length & 0xff, ...rdata);
  }
  return new Uint8Array([...head, ...body]);
}

const a = (ip: string): Rr => ({ type: RR.A, rdata: () => ip.split(".").map(Number) });
const aaaa = (bytes: number[]): Rr => ({ type: RR.AAAA, rdata: () => bytes });
const mx = (pref: number, host: string): Rr => ({
  type: RR.MX,
  rdata: () => [pref >> 8, pref & 0xff, ...nameBytes(host)],
});
const txt = (...strings: string[]): Rr => ({
  type: RR.TXT,
  rdata: () =>
    strings.flatMap((s) => {
      const b = new TextEncoder().encode(s);
      return [b.length, ...b];
    }),
});
const ptr = (host: string): Rr => ({ type: RR.PTR, rdata: () => nameBytes(host) });
const ns = (host: string): Rr => ({ type: 2, rdata: () => nameBytes(host) });
const cname = (host: string): Rr => ({ type: 5, rdata: () => nameBytes(host) });

function question(q: Uint8Array): { name: string; type: number } {
  const labels: string[] = [];
  let i = 12;
  while (q[i]) {
    labels.push(new TextDecoder().decode(q.subarray(i + 1, i + 1 + q[i])));
    i += 1 + q[i];
  }
  return { name: labels.join("."), type: (q[i + 1] << 8) | q[i + 2] };
}

type Handler = (q: { name: string; type: number }, raw: Uint8Array, via: "udp" | "tcp") =>
  | Uint8Array
  | null;

/** A DNS server on 127.0.0.1 (UDP and TCP on one port) answering through `handle`. */
async function withServer(handle: Handler, fn: (server: string, asked: string[]) => Promise<void>) {
  const asked: string[] = [];
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const q = new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      const qq = question(q);
      asked.push(`tcp ${qq.name} ${qq.type}`);
      const r = handle(qq, q, "tcp");
      if (!r) return void s.destroy();
      const framed = Buffer.alloc(2 + r.length);
      framed.writeUInt16BE(r.length, 0);
      framed.set(r, 2);
      s.end(framed);
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
  const port = (tcp.address() as net.AddressInfo).port;
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, "127.0.0.1", () => resolve());
  });
  udp.on("message", (msg: Buffer, from: dgram.RemoteInfo) => {
    const q = new Uint8Array(msg);
    const qq = question(q);
    asked.push(`udp ${qq.name} ${qq.type}`);
    const r = handle(qq, q, "udp");
    if (r) udp.send(r, from.port, from.address);
  });
  try {
    await fn(`127.0.0.1:${port}`, asked);
  } finally {
    await new Promise<void>((r) => udp.close(() => r()));
    await new Promise<void>((r) => tcp.close(() => r()));
  }
}

Deno.test("with dns_server set, every record type comes from that server", async () => {
  await withServer((q, raw) => {
    if (q.name === "relay.test" && q.type === RR.A) return answer(raw, 0, [a("127.1.2.3")]);
    if (q.name === "relay.test" && q.type === RR.AAAA) {
      return answer(raw, 0, [aaaa([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1])]);
    }
    if (q.name === "relay.test" && q.type === RR.MX) {
      return answer(raw, 0, [mx(20, "mx2.relay.test"), mx(10, "mx1.relay.test")]);
    }
    if (q.name === "relay.test" && q.type === RR.TXT) {
      return answer(raw, 0, [txt("v=spf1 ", "a ~all"), txt("other")]);
    }
    if (q.name === "3.2.1.127.in-addr.arpa" && q.type === RR.PTR) {
      return answer(raw, 0, [ptr("relay.test")]);
    }
    return answer(raw, 3, []);
  }, async (server, asked) => {
    const dns = systemResolver(server);
    assert.deepEqual(await dns.addresses("relay.test"), ["2001:db8::1", "127.1.2.3"]);
    assert.deepEqual(await dns.mx("relay.test"), [
      { preference: 20, exchange: "mx2.relay.test" },
      { preference: 10, exchange: "mx1.relay.test" },
    ]);
    assert.deepEqual(await dns.txt("relay.test"), ["v=spf1 a ~all", "other"]);
    assert.deepEqual(await dns.ptr!("127.1.2.3"), ["relay.test"]);
    assert.deepEqual(asked.toSorted(), [
      "udp 3.2.1.127.in-addr.arpa 12",
      "udp relay.test 1",
      "udp relay.test 15",
      "udp relay.test 16",
      "udp relay.test 28",
    ]);
  });
});

Deno.test("names in /etc/hosts and under localhost are asked of the server too", async () => {
  // Deno.resolveDns answers these itself even when given a name server.
  await withServer((_q, raw) => answer(raw, 3, []), async (server, asked) => {
    const dns = systemResolver(server);
    assert.deepEqual(await dns.addresses("localhost"), []);
    assert.deepEqual(await dns.ptr!("127.0.0.1"), []);
    assert.deepEqual(asked.toSorted(), [
      "udp 1.0.0.127.in-addr.arpa 12",
      "udp localhost 1",
      "udp localhost 28",
    ]);
  });
});

Deno.test("NXDOMAIN and NODATA: an MX lookup tells them apart, others give []", async () => {
  await withServer((q, raw) => {
    if (q.name === "nodata.test") return answer(raw, 0, []);
    return answer(raw, 3, []);
  }, async (server) => {
    const dns = systemResolver(server);
    assert.deepEqual(await dns.mx("nodata.test"), []);
    await assert.rejects(
      dns.mx("missing.test"),
      (e) => e instanceof DnsError && e.kind === "nxdomain",
    );
    assert.deepEqual(await dns.addresses("missing.test"), []);
    assert.deepEqual(await dns.txt("missing.test"), []);
  });
});

Deno.test("without dns_server (Deno's resolver): no MX is the implicit MX, SERVFAIL is not NXDOMAIN", async () => {
  // Deno.resolveDns throws NotFound for NXDOMAIN, NODATA and SERVFAIL alike (Deno 2.9.6).
  await withServer((q, raw) => {
    if (q.name === "nomx.test" && q.type === RR.A) return answer(raw, 0, [a("127.0.0.7")]);
    if (q.name === "nomx.test") return answer(raw, 0, []);
    if (q.name.startsWith("broken.")) return answer(raw, 2, []);
    return answer(raw, 3, []);
  }, async (server) => {
    const { ip, port } = parseDnsServer(server);
    const dns = hostResolver({ nameServer: { ipAddr: ip, port } });
    // RFC 5321 §5.1: a domain without MX records receives mail at its own address.
    assert.deepEqual(await route("nomx.test", dns), {
      ok: true,
      destinations: [{ host: "nomx.test", addresses: ["127.0.0.7"], insecureTls: false }],
    });
    // A failing DNS server is a reason to try again, not a bounce.
    const broken = await route("broken.test", dns);
    assert.equal(broken.ok, false);
    assert.equal(!broken.ok && broken.permanent, false, JSON.stringify(broken));
  });
});

Deno.test("without dns_server (Deno's resolver): a domain that does not exist bounces while the resolver answers for the root zone, not while it fails", async () => {
  let rootAnswers = true;
  await withServer((q, raw) => {
    if (q.name === "" && q.type === 2) {
      return rootAnswers ? answer(raw, 0, [ns("a.root-servers.test")]) : answer(raw, 2, []);
    }
    if (q.name.startsWith("broken.")) return answer(raw, 2, []);
    return answer(raw, 3, []);
  }, async (server, asked) => {
    const { ip, port } = parseDnsServer(server);
    const dns = hostResolver({ nameServer: { ipAddr: ip, port } });
    // The resolver works (it knows the root's name servers): NotFound is a real NXDOMAIN (a
    // mistyped domain), bounced at once as the reference relay does ("512 Domain … does not
    // exist"), not kept in the queue for its whole lifetime.
    const typo = await route("nosuch.test", dns);
    assert.equal(!typo.ok && typo.permanent, true, JSON.stringify(typo));
    // The probe is remembered for a while: a second failing domain asks nothing more of the root.
    const rootQueries = () => asked.filter((q) => /^(udp|tcp) {2}2$/.test(q)).length;
    assert.ok(rootQueries() > 0, asked.join(", "));
    const before = rootQueries();
    await route("nosuch2.test", dns);
    assert.equal(rootQueries(), before);
  });
  // A resolver that fails everything: NotFound may be its SERVFAIL, so the mail waits.
  rootAnswers = false;
  await withServer((q, raw) => {
    if (q.name === "" && q.type === 2) return answer(raw, 2, []);
    return answer(raw, 2, []);
  }, async (server) => {
    const { ip, port } = parseDnsServer(server);
    const dns = hostResolver({ nameServer: { ipAddr: ip, port } });
    const failing = await route("nosuch.test", dns);
    assert.equal(failing.ok, false);
    assert.equal(!failing.ok && failing.permanent, false, JSON.stringify(failing));
  });
});

Deno.test("a CNAME chain in the answer: only records of the asked type count", async () => {
  await withServer((_q, raw) => answer(raw, 0, [cname("real.test"), a("127.9.9.9")]), async (s) => {
    const r = await queryDns(parseDnsServer(s), "alias.test", "A");
    assert.deepEqual(r.records, [{ type: "A", value: "127.9.9.9" }]);
  });
});

Deno.test("a truncated UDP answer is asked again over TCP", async () => {
  const many = Array.from({ length: 40 }, (_, i) => txt(`record ${i} `.padEnd(60, "x")));
  await withServer((_q, raw, via) => {
    if (via === "udp") return answer(raw, 0, [], 0x0200); // TC
    return answer(raw, 0, many);
  }, async (server, asked) => {
    const got = await systemResolver(server).txt("big.test");
    assert.equal(got.length, 40);
    assert.match(got[39], /^record 39 x+$/);
    assert.deepEqual(asked, ["udp big.test 16", "tcp big.test 16"]);
  });
});

Deno.test("a server that fails or stays silent gives a temporary DnsError", async () => {
  await withServer((q, raw) => q.name === "fail.test" ? answer(raw, 2, []) : null, async (s) => {
    const dns = systemResolver(s);
    await assert.rejects(
      dns.txt("fail.test"),
      (e) => e instanceof DnsError && e.kind === "temporary" && /SERVFAIL/.test(e.message),
    );
    const server = parseDnsServer(s);
    await assert.rejects(
      queryDns(server, "silent.test", "A", { timeoutMs: 50, tries: 2 }),
      /no answer in time/,
    );
  });
});

Deno.test("answers that do not belong to the query are refused", () => {
  const q = encodeQuery(0x1234, "relay.test", "A");
  const good = answer(q, 0, [a("127.0.0.5")]);
  assert.deepEqual(decodeAnswer(good, 0x1234, "relay.test", "A").records, [
    { type: "A", value: "127.0.0.5" },
  ]);
  assert.throws(() => decodeAnswer(good, 0x9999, "relay.test", "A"), /different id/);
  assert.throws(() => decodeAnswer(good, 0x1234, "other.test", "A"), /another question/);
  assert.throws(() => decodeAnswer(good, 0x1234, "relay.test", "MX"), /another question/);
  assert.throws(() => decodeAnswer(q, 0x1234, "relay.test", "A"), /not an answer/);
  // Cut anywhere inside the record: an error, never a partial record.
  for (let n = q.length; n < good.length; n++) {
    assert.throws(() => decodeAnswer(good.subarray(0, n), 0x1234, "relay.test", "A"), /cut short/);
  }
  // A compression pointer that points at itself (or forwards) must not loop.
  const loop = new Uint8Array([...good.subarray(0, q.length), 0xc0, q.length, 0, 1, 0, 1]);
  loop[7] = 1;
  assert.throws(() => decodeAnswer(loop, 0x1234, "relay.test", "A"), /compression/);
  // A record with the wrong length for its type.
  const bad = answer(q, 0, [{ type: RR.A, rdata: () => [127, 0, 0] }]);
  assert.throws(() => decodeAnswer(bad, 0x1234, "relay.test", "A"), /bad A record/);
});

Deno.test("dns_server forms: ip, ip:port, [v6]:port, bare v6; anything else is refused", () => {
  assert.deepEqual(parseDnsServer("127.0.0.1"), { ip: "127.0.0.1", port: 53 });
  assert.deepEqual(parseDnsServer("127.0.0.1:5353"), { ip: "127.0.0.1", port: 5353 });
  assert.deepEqual(parseDnsServer("[::1]:5353"), { ip: "::1", port: 5353 });
  assert.deepEqual(parseDnsServer("2001:db8::53"), { ip: "2001:db8::53", port: 53 });
  assert.throws(() => parseDnsServer("dns.example"), /not a DNS server address/);
  assert.throws(() => encodeQuery(1, `${"x".repeat(64)}.test`, "A"), /bad DNS label/);
});
