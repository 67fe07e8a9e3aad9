// Three tern relays (a.test, b.test, c.test) with their own DNS server (dnsmasq) and peers that
// misbehave: one that accepts connections and never answers, one that refuses them, one that
// answers one byte at a time, and c.test behind a switch that takes it offline and back. Mail to
// the healthy relay keeps flowing whatever the others do; nothing is lost or duplicated; mail
// held by the outage leaves as soon as c.test shows it is back, not when a backoff ends.

import assert from "node:assert/strict";
import * as net from "node:net";
import { submitEncrypted } from "./support/submit.ts";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { type Dnsmasq, dnsmasqNeed, startDnsmasq } from "./support/dnsmasq.ts";
import { DKIM_SELECTOR, dkimDnsRecord, systemResolver } from "../src/federation/mod.ts";
import type { DnsResolver, PeerPorts } from "../src/federation/mod.ts";
import { dkimKey } from "../src/app/federation.ts";
import {
  drippingPeer,
  httpAnswer,
  httpsPeer,
  silentPeer,
  testCertificate,
} from "../src/federation/testdata/fake_peers.ts";

const dec = new TextDecoder();

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  ms = 30_000,
) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function inbox(t: TestRelay, address: string): Promise<string[]> {
  const store = t.relay.services.store;
  const account = (await store.getAccount(address))!;
  const mb = (await store.getMailbox(account.id, "INBOX"))!;
  const out: string[] = [];
  for (const m of await store.listMessages(mb.id)) {
    out.push(dec.decode((await store.readBody(m.bodyId))!));
  }
  return out;
}

const messageIds = (bodies: string[]) =>
  bodies.map((b) => /^Message-ID: (.*)$/m.exec(b)?.[1] ?? "").filter((id) => id);

function listenOn(ip: string): Record<string, unknown> {
  return {
    // The peers are on loopback addresses, which outbound delivery refuses unless allowed.
    outbound_allow_private: true,
    "listen.smtp": `${ip}:0`,
    "listen.submission": `${ip}:0`,
    "listen.submissions": `${ip}:0`,
    "listen.imap": `${ip}:0`,
    "listen.imaps": `${ip}:0`,
    "listen.http": `${ip}:0`,
    "listen.https": `${ip}:0`,
    turn_port: 0,
    max_user_send_per_minute: 100_000,
    max_user_send_burst_size: 100_000,
  };
}

function portsOf(t: TestRelay): PeerPorts {
  return {
    smtp: t.addr("smtp").port,
    https: Number(t.relay.addresses.https!.split(":").pop()),
  };
}

/** A TCP forwarder at `ip` to a relay's SMTP and HTTPS ports that can be switched off and on. */
async function outageSwitch(ip: string, target: { host: string; ports: PeerPorts }) {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const ports: PeerPorts = { smtp: 0, https: 0 };
  const up = async () => {
    for (const kind of ["smtp", "https"] as const) {
      const server = net.createServer((client) => {
        const upstream = net.connect({ host: target.host, port: target.ports[kind] });
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((r) => server.listen(ports[kind], ip, () => r()));
      ports[kind] = (server.address() as net.AddressInfo).port;
      servers.push(server);
    }
  };
  const down = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  };
  await up();
  return { ports, up, down };
}

Deno.test({
  name: dnsmasqNeed.title(
    "federation among three relays with a silent, a refusing, a dripping and an offline peer",
  ),
  ignore: dnsmasqNeed.ignore,
  async fn(t) {
    // The records name the relays' DKIM keys, so dnsmasq starts after the relays: they get a
    // resolver that asks it once it runs.
    let server: DnsResolver | null = null;
    const late = <K extends "mx" | "addresses" | "txt">(k: K) => (name: string) => {
      if (!server) throw new Error("dnsmasq is not running yet");
      return server[k](name) as ReturnType<DnsResolver[K]>;
    };
    const dns: DnsResolver = { mx: late("mx"), addresses: late("addresses"), txt: late("txt") };
    const peerCert = await testCertificate(["slow.test"]);
    const table: Record<string, PeerPorts> = {};
    const cas: string[] = [peerCert.caPem!];
    const federation = {
      ports: (address: string) => table[address] ?? { smtp: 1, https: 1 },
      caCerts: cas,
      // Short enough for a test, long enough that a hanging attempt is still hanging when the
      // healthy mail arrives; the backoff is an hour so that only the peer's return moves mail.
      deadlines: { connectMs: 5_000, tlsMs: 5_000, commandMs: 5_000, attemptMs: 20_000 },
      backoff: { baseMs: 3600_000, capMs: 3600_000 },
    };
    const silent = await silentPeer("127.0.0.4");
    table["127.0.0.4"] = { smtp: silent.port, https: silent.port };
    // 127.0.0.5 (refuse.test): nothing listens, every connection is refused.
    const slowSmtp = await drippingPeer(
      "220 slow.test ESMTP one byte at a time\r\n",
      200,
      "127.0.0.6",
    );
    const slowHttps = await httpsPeer({
      tls: peerCert,
      host: "127.0.0.6",
      script: () => ({ raw: httpAnswer(200, "250 OK"), dripMs: 200 }),
    });
    table["127.0.0.6"] = { smtp: slowSmtp.port, https: slowHttps.port };
    let dnsmasq: Dnsmasq | null = null;
    try {
      await withRelay(async (c) => {
        table["127.0.0.3"] = portsOf(c);
        cas.push(c.caPem);
        const offline = await outageSwitch("127.0.0.7", { host: "127.0.0.3", ports: portsOf(c) });
        table["127.0.0.7"] = offline.ports;
        try {
          await withRelay(async (b) => {
            table["127.0.0.2"] = portsOf(b);
            cas.push(b.caPem);
            await withRelay(async (a) => {
              table["127.0.0.1"] = portsOf(a);
              cas.push(a.caPem);
              const names: [string, string][] = [
                ["a.test", "127.0.0.1"],
                ["b.test", "127.0.0.2"],
                ["c.test", "127.0.0.7"],
                ["silent.test", "127.0.0.4"],
                ["refuse.test", "127.0.0.5"],
                ["slow.test", "127.0.0.6"],
              ];
              const d = dnsmasq = await startDnsmasq([
                ...names.map(([n, ip]) => `--address=/${n}/${ip}`),
                ...names.map(([n]) => `--mx-host=${n},${n},10`),
                ...[a, b, c].map((r) =>
                  `--txt-record=${DKIM_SELECTOR}._domainkey.${r.domain},${
                    dkimDnsRecord(dkimKey(r.relay.config).privateKeyPem)
                  }`
                ),
              ]);
              server = systemResolver(d.server);
              const alice = await createAccount(a, "alice0001");
              const bob = await createAccount(b, "bobby0001");
              const carol = await createAccount(c, "carol0001");
              let toBob = 0;
              const sendToBob = async (n: number) => {
                for (let i = 0; i < n; i++) await submitEncrypted(a, alice, [bob.address]);
                toBob += n;
              };
              const bobHasAll = () =>
                waitFor(
                  `${toBob} messages at bob`,
                  async () => (await inbox(b, bob.address)).length >= toBob,
                );
              const dest = async (domain: string) =>
                (await a.relay.outbound.destinations()).find((d) => d.domain === domain);

              await t.step("a silent peer holds only its own slot", async () => {
                await submitEncrypted(a, alice, ["someone@silent.test"]);
                await waitFor(
                  "the silent peer's connection",
                  () => Promise.resolve(silent.accepted > 0),
                );
                await sendToBob(10);
                await bobHasAll();
                // Everything for b.test arrived while the attempt at silent.test still hangs.
                assert.ok(silent.open >= 1, "the silent attempt is still running");
                assert.equal((await dest("silent.test"))?.active, 1);
              });

              await t.step("a refusing peer backs off; mail to b.test keeps flowing", async () => {
                await submitEncrypted(a, alice, ["someone@refuse.test"]);
                const d = await waitFor("refuse.test to back off", async () => {
                  const x = await dest("refuse.test");
                  return x?.state === "backoff" ? x : null;
                });
                assert.match(d.lastError!, /ECONNREFUSED/);
                await sendToBob(5);
                await bobHasAll();
              });

              await t.step("a peer that drips its answer is cut at the deadline", async () => {
                await submitEncrypted(a, alice, ["someone@slow.test"]);
                await sendToBob(5);
                await bobHasAll();
                const d = await waitFor("slow.test to be given up for now", async () => {
                  const x = await dest("slow.test");
                  return x?.lastError ? x : null;
                });
                assert.match(
                  d.lastError!,
                  /^https:\/\/slow\.test:\d+\/mxdeliv: no HTTP response( header)? in time; /,
                );
                assert.match(d.lastError!, /no reply to the greeting in time/);
              });

              await t.step("a 550 for one of two recipients stays that recipient's", async () => {
                await submitEncrypted(a, alice, [bob.address, "nobody999@b.test"]);
                toBob++;
                await bobHasAll();
                const bounce = await waitFor(
                  "the bounce for nobody",
                  async () =>
                    (await inbox(a, alice.address)).find((m) => m.includes("nobody999@b.test")),
                );
                assert.match(bounce, /Final-Recipient: rfc822; nobody999@b\.test/);
                assert.match(bounce, /Status: 5\.1\.1/);
                // b.test keeps /mxdeliv: no switch to SMTP for a recipient's refusal.
                assert.equal(a.relay.outbound.mxdelivSkipped("b.test"), false);
                await sendToBob(1);
                await bobHasAll();
              });

              await t.step(
                "mail held by an outage leaves when the peer sends mail again",
                async () => {
                  await offline.down();
                  for (let i = 0; i < 3; i++) await submitEncrypted(a, alice, [carol.address]);
                  await waitFor(
                    "c.test to back off",
                    async () => (await dest("c.test"))?.state === "backoff",
                  );
                  await offline.up();
                  // Back, but its backoff is an hour: only carol's mail to alice can release it.
                  assert.equal((await dest("c.test"))?.state, "backoff");
                  await submitEncrypted(c, carol, [alice.address]);
                  const got = await waitFor("three messages at carol", async () => {
                    const m = await inbox(c, carol.address);
                    return m.length >= 3 ? m : null;
                  });
                  assert.equal(new Set(messageIds(got)).size, 3);
                  assert.equal((await dest("c.test"))?.state ?? "open", "open");
                },
              );

              await t.step("mail held by an outage leaves when new mail gets through", async () => {
                await offline.down();
                for (let i = 0; i < 2; i++) await submitEncrypted(a, alice, [carol.address]);
                await waitFor(
                  "c.test to back off",
                  async () => (await dest("c.test"))?.state === "backoff",
                );
                await offline.up();
                // A new message probes at once; its success releases the two held ones.
                await submitEncrypted(a, alice, [carol.address]);
                const got = await waitFor("six messages at carol", async () => {
                  const m = await inbox(c, carol.address);
                  return m.length >= 6 ? m : null;
                });
                assert.equal(new Set(messageIds(got)).size, 6);
              });

              await t.step("nothing was lost or duplicated", async () => {
                const atBob = await inbox(b, bob.address);
                assert.equal(atBob.length, toBob);
                assert.equal(new Set(messageIds(atBob)).size, toBob);
                assert.equal((await inbox(c, carol.address)).length, 6);
                // Still queued (once the last outcomes are stored): only the three peers that
                // never answered properly.
                const waiting = async () =>
                  JSON.stringify(
                    (await a.relay.outbound.destinations()).filter((d) => d.pending > 0)
                      .map((d) => [d.domain, d.pending]).sort(),
                  );
                const expected = JSON.stringify([["refuse.test", 1], ["silent.test", 1], [
                  "slow.test",
                  1,
                ]]);
                await waitFor(
                  "the queue to hold only the broken peers' mail",
                  async () => (await waiting()) === expected,
                ).catch(async (err) => {
                  throw new Error(`${err.message}: ${await waiting()}`);
                });
              });
            }, {
              overrides: { domain: "a.test", ...listenOn("127.0.0.1") },
              relay: { dns, federation },
            });
          }, {
            overrides: { domain: "b.test", ...listenOn("127.0.0.2") },
            relay: { dns, federation },
          });
        } finally {
          await offline.down();
        }
      }, {
        overrides: { domain: "c.test", ...listenOn("127.0.0.3") },
        relay: { dns, federation },
      });
    } finally {
      await (dnsmasq as Dnsmasq | null)?.stop();
      await silent.close();
      await slowSmtp.close();
      await slowHttps.close();
    }
  },
});
