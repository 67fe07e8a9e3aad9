// Two relays on 127.0.0.1 and 127.0.0.2 exchanging mail over HTTPS /mxdeliv and over SMTP with
// STARTTLS, by IP literal and by DNS name (MX + DKIM from an injected resolver); an unreachable
// destination is deferred with every attempt's reason, then bounced; non-public destination
// addresses are refused unless the operator allows them.

import assert from "node:assert/strict";
import { submitEncrypted } from "./support/submit.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage } from "./support/messages.ts";
import { createAccount, fakeDns, NO_DNS, type TestRelay, withRelay } from "./support/relay.ts";
import { DKIM_SELECTOR, dkimDnsRecord, systemResolver } from "../src/federation/mod.ts";
import { dkimKey } from "../src/app/federation.ts";
import type { DnsResolver } from "../src/federation/mod.ts";
import { dnsmasqNeed, startDnsmasq } from "./support/dnsmasq.ts";

const dec = new TextDecoder();

async function inboxBodies(t: TestRelay, address: string): Promise<string[]> {
  const store = t.relay.services.store;
  const account = (await store.getAccount(address))!;
  const mb = (await store.getMailbox(account.id, "INBOX"))!;
  const out: string[] = [];
  for (const m of await store.listMessages(mb.id)) {
    out.push(dec.decode((await store.readBody(m.bodyId))!));
  }
  return out;
}

/** tern_messages_received_total{via} on a relay's /metrics. */
async function receivedVia(t: TestRelay, via: string): Promise<number> {
  const text = await (await fetch(`http://${t.relay.addresses.metrics}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`tern_messages_received_total{via="${via}"} `)
  );
  return line ? Number(line.split(" ").pop()) : 0;
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  ms = 15_000,
) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Listeners on `ip`; outbound delivery may reach the other peers, which are on loopback too. */
function listenOn(ip: string, https = true): Record<string, unknown> {
  return {
    outbound_allow_private: true,
    "listen.smtp": `${ip}:0`,
    "listen.submission": `${ip}:0`,
    "listen.submissions": `${ip}:0`,
    "listen.imap": `${ip}:0`,
    "listen.imaps": `${ip}:0`,
    "listen.http": `${ip}:0`,
    "listen.https": https ? `${ip}:0` : "",
    "listen.metrics": `${ip}:0`,
  };
}

/** Relay B on 127.0.0.2 first (its ports are A's federation ports), then relay A. */
async function withPair(
  options: { bHttps: boolean; named?: boolean; mtaSts?: "match" | "mismatch" },
  fn: (a: TestRelay, b: TestRelay) => Promise<void>,
) {
  const tables: Parameters<typeof fakeDns>[0] = { mx: {}, addresses: {}, txt: {} };
  const dns: DnsResolver = options.named ? fakeDns(tables) : NO_DNS;
  const bDomain = options.named ? "b.test" : "127.0.0.2";
  // Filled in once A runs: B's way back to A.
  const aPorts = { smtp: 1, https: 1 };
  const aDomain = options.named ? "a.test" : "127.0.0.1";
  await withRelay(async (b) => {
    const bPorts = {
      smtp: b.addr("smtp").port,
      https: options.bHttps ? Number(b.relay.addresses.https!.split(":").pop()) : 1,
    };
    await withRelay(async (a) => {
      aPorts.smtp = a.addr("smtp").port;
      aPorts.https = Number(a.relay.addresses.https!.split(":").pop());
      if (options.named) {
        const mx = options.mtaSts === "mismatch" ? "mx.b.test" : "b.test";
        tables.mx!["b.test"] = [{ preference: 10, exchange: mx }];
        tables.addresses![mx] = ["127.0.0.2"];
        if (options.mtaSts) {
          tables.txt!["_mta-sts.b.test"] = ["v=STSv1; id=20261123"];
          tables.addresses!["mta-sts.b.test"] = ["127.0.0.2"];
        }
        tables.txt![`${DKIM_SELECTOR}._domainkey.a.test`] = [
          dkimDnsRecord(dkimKey(a.relay.config).privateKeyPem),
        ];
      }
      await fn(a, b);
    }, {
      overrides: { domain: aDomain, ...listenOn("127.0.0.1") },
      relay: { dns, federation: { ports: bPorts, caCerts: [b.caPem] } },
    });
  }, {
    overrides: { domain: bDomain, ...listenOn("127.0.0.2", options.bHttps) },
    relay: { dns, federation: { ports: aPorts } },
  });
}

Deno.test("federation: IP-literal relays deliver over HTTPS /mxdeliv", async () => {
  await withPair({ bHttps: true }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    const got = await waitFor("delivery to bob", async () => {
      const bodies = await inboxBodies(b, bob.address);
      return bodies.length ? bodies : null;
    });
    assert.match(got[0], /^From: <alice0001@\[127\.0\.0\.1\]>/m);
    assert.match(got[0], /^Subject: \[\.\.\.\]$/m);
    await waitFor(
      "the queue to empty",
      async () => (await a.relay.services.store.countQueued()) === 0,
    );
    const stats = await a.relay.services.store.listFederationStats();
    assert.deepEqual(stats.map((s) => [s.domain, s.sent]), [["[127.0.0.2]", 1]]);
    // B counts mail that came over /mxdeliv on /metrics as it counts SMTP.
    assert.equal(await receivedVia(b, "mxdeliv"), 1);
    assert.equal(await receivedVia(b, "smtp"), 0);
  });
});

Deno.test("federation: a full mailbox among the peer's recipients comes back as a bounce the sender's relay accepts", async () => {
  await withPair({ bHttps: true }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    const carol = await createAccount(b, "carol0001");
    const bStore = b.relay.services.store;
    await bStore.setQuota((await bStore.getAccount(bob.address))!.id, 100);
    const sent = await submitEncrypted(a, alice, [bob.address, carol.address]);
    await waitFor("delivery to carol", async () => (await inboxBodies(b, carol.address)).length);
    // B answered 250 for carol and queued a report for bob; it crosses back over /mxdeliv from
    // the null sender and passes A's inbound policy (the mailer-daemon exception).
    const [bounce] = await waitFor("the bounce at alice", async () => {
      const bodies = await inboxBodies(a, alice.address);
      return bodies.length ? bodies : null;
    });
    assert.match(bounce, /^From: Mail Delivery System <MAILER-DAEMON@\[127\.0\.0\.2\]>/m);
    assert.match(bounce, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.ok(
      bounce.includes(`Final-Recipient: rfc822; ${bob.address}\r\nAction: failed\r\nStatus: 5.2.2`),
    );
    assert.ok(bounce.includes(/^Message-ID: .+$/m.exec(sent)![0]), bounce);
    assert.equal((await inboxBodies(b, bob.address)).length, 0);
  });
});

Deno.test("federation: SMTP with STARTTLS when the peer has no /mxdeliv", async () => {
  await withPair({ bHttps: false }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    const got = await waitFor("delivery to bob", async () => {
      const bodies = await inboxBodies(b, bob.address);
      return bodies.length ? bodies : null;
    });
    assert.match(got[0], /-----BEGIN PGP MESSAGE-----/);
    // Counted once the 250 went out, just after the message was stored.
    await waitFor("B's count of mail over SMTP", async () => await receivedVia(b, "smtp") === 1);
    assert.equal(await receivedVia(b, "mxdeliv"), 0);
    // And back: bob answers alice.
    await submitEncrypted(b, bob, [alice.address]);
    await waitFor(
      "delivery to alice",
      async () => (await inboxBodies(a, alice.address)).length > 0,
    );
  });
});

Deno.test("federation: named domains by MX, DKIM-signed and verified", async () => {
  await withPair({ bHttps: true, named: true }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    const got = await waitFor("delivery to bob", async () => {
      const bodies = await inboxBodies(b, bob.address);
      return bodies.length ? bodies : null;
    });
    // The signature was checked on arrival and stripped from the stored copy.
    assert.doesNotMatch(got[0], /^DKIM-Signature:/im);
    assert.match(got[0], /^From: <alice0001@a\.test>/m);
    // The received counter is stored about once a second.
    await waitFor("the received counter", async () => {
      const stats = await b.relay.services.store.listFederationStats();
      return stats.some((s) => s.domain === "a.test" && s.received === 1);
    });
  });
});

for (const bHttps of [true, false]) {
  Deno.test(`federation: a 2 MB message (a body file) goes over ${bHttps ? "/mxdeliv" : "SMTP"} streamed from the store, DKIM-signed, byte for byte`, async () => {
    await withPair({ bHttps, named: true }, async (a, b) => {
      const alice = await createAccount(a, "alice0001");
      const bob = await createAccount(b, "bobby0001");
      // Lines that start with "." on the way too (dot-stuffing across pieces).
      const text = Array.from({ length: 40_000 }, (_, i) => `.line ${i} ${"x".repeat(i % 61)}`)
        .join("\n");
      const sent = await submitEncrypted(a, alice, [bob.address], text);
      assert.ok(sent.length > 1_500_000, `${sent.length} bytes: past the inline limit`);
      const got = await waitFor("delivery to bob", async () => {
        const bodies = await inboxBodies(b, bob.address);
        return bodies.length ? bodies : null;
      }, 60_000);
      const armor = (m: string) => m.slice(m.indexOf("-----BEGIN PGP MESSAGE-----"));
      assert.equal(armor(got[0]), armor(sent), "the body arrived byte for byte");
      // B took it in, so A's signature over the streamed body verified there: B refuses mail
      // from a named domain without an aligned DKIM signature that passes.
      // B stores before it answers: A records the outcome just after.
      await waitFor(
        "the queue to empty",
        async () => (await a.relay.services.store.countQueued()) === 0,
      );
      const stats = await a.relay.services.store.listFederationStats();
      assert.deepEqual(stats.map((s) => [s.domain, s.sent, s.failures]), [["b.test", 1, 0]]);
    });
  });
}

Deno.test("federation: lines that start with '.' arrive unchanged over /mxdeliv between two terns", async () => {
  await withPair({ bHttps: true, named: true }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    // A part header field whose name starts with ".": in the body, so DKIM's body hash covers it.
    const message = (await encryptedMessage(alice.address, bob.address)).replace(
      "Content-Type: application/octet-stream",
      ".X-Dot: 1\r\nContent-Type: application/octet-stream",
    );
    const c = await SmtpTestClient.connect(a.addr("submissions"), { tls: true, caPem: a.caPem });
    await c.reply();
    await c.cmd("EHLO client.test");
    await c.login(alice.address, alice.password);
    const r = await c.sendMail(alice.address, [bob.address], message);
    c.close();
    assert.equal(r.code, 250, r.text);
    const got = await waitFor("delivery to bob", async () => {
      const bodies = await inboxBodies(b, bob.address);
      return bodies.length ? bodies : null;
    });
    const body = (m: string) => m.slice(m.indexOf("\r\n\r\n"));
    assert.equal(body(got[0]), body(message));
    // Counted once the answer is made, just after the message was stored (bob may see it first).
    await waitFor(
      "B's count of mail over /mxdeliv",
      async () => await receivedVia(b, "mxdeliv") === 1,
    );
  });
});

Deno.test("federation: an unreachable destination is deferred with every reason, then bounced", async () => {
  let clock = Date.UTC(2026, 10, 23, 8, 0, 0);
  await withRelay(async (a) => {
    const alice = await createAccount(a, "alice0001");
    await submitEncrypted(a, alice, ["nobody@[127.0.0.3]"]);
    const store = a.relay.services.store;
    // Tried twice: the second time at once on a new connection (the window shrank from 2 to 1),
    // then the peer counts as down and waits out its backoff.
    assert.equal(await a.relay.outbound.runOnce(), 2);
    const [entry] = (await store.listQueue({})).items;
    const [r] = entry.recipients;
    assert.equal(r.status, "deferred");
    assert.match(
      r.lastError!,
      /^https:\/\/127\.0\.0\.3:1\/mxdeliv: .*ECONNREFUSED.*; Connection to 127\.0\.0\.3:2 failed: .*ECONNREFUSED/,
    );
    assert.ok(r.nextAttemptAt > clock);
    // Nothing is due before the retry time.
    assert.equal(await a.relay.outbound.runOnce(), 0);
    // The lifetime ends: the expiry bounces it without waiting for another attempt.
    const accepted = clock;
    clock += 2 * 3600_000;
    assert.equal(await a.relay.outbound.runOnce(), 0);
    assert.equal(await store.countQueued(), 0);
    const bodies = await inboxBodies(a, alice.address);
    assert.equal(bodies.length, 1);
    assert.match(bodies[0], /^From: Mail Delivery System <MAILER-DAEMON@\[127\.0\.0\.1\]>/m);
    assert.match(bodies[0], /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(bodies[0], /Final-Recipient: rfc822; nobody@\[127\.0\.0\.3\]/);
    assert.match(bodies[0], /Action: failed\r\nStatus: 4\.4\.7\r\n/);
    assert.match(bodies[0], /Diagnostic-Code: smtp; Gave up after 1 attempt: https:/);
    const arrival = new Date(accepted).toUTCString().replace("GMT", "+0000");
    assert.ok(bodies[0].includes(`Arrival-Date: ${arrival}`), "Arrival-Date is the acceptance");
  }, {
    overrides: { queue_lifetime: "1h", outbound_allow_private: true },
    relay: {
      now: () => clock,
      manualQueue: true,
      federation: { ports: { smtp: 2, https: 1 } },
    },
  });
});

Deno.test("federation: an enforced MTA-STS policy admits its MX hosts and refuses others", async () => {
  await withPair({ bHttps: true, named: true, mtaSts: "match" }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    await waitFor(
      "delivery under the policy",
      async () => (await inboxBodies(b, bob.address)).length > 0,
    );
  });
  await withPair({ bHttps: true, named: true, mtaSts: "mismatch" }, async (a, b) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    const r = await waitFor("the deferral", async () => {
      const [e] = (await a.relay.services.store.listQueue({})).items;
      const rc = e?.recipients[0];
      return rc?.status === "deferred" ? rc : null;
    });
    assert.match(r.lastError!, /^MTA-STS policy of b\.test allows b\.test, not mx\.b\.test$/);
    assert.equal((await inboxBodies(b, bob.address)).length, 0);
  });
});

Deno.test(
  dnsmasqNeed.title("federation by DNS names from a real DNS server (dnsmasq): MX, A, DKIM TXT"),
  { ignore: dnsmasqNeed.ignore },
  async () => {
    // The records name the relays' DKIM keys, so dnsmasq starts after the relays: they get a
    // resolver that asks it once it runs.
    let server: DnsResolver | null = null;
    const late = <K extends "mx" | "addresses" | "txt">(k: K) => (name: string) => {
      if (!server) throw new Error("dnsmasq is not running yet");
      return server[k](name) as ReturnType<DnsResolver[K]>;
    };
    const dns: DnsResolver = { mx: late("mx"), addresses: late("addresses"), txt: late("txt") };
    const aPorts = { smtp: 1, https: 1 };
    const aCa: string[] = [];
    await withRelay(async (b) => {
      const bPorts = {
        smtp: b.addr("smtp").port,
        https: Number(b.relay.addresses.https!.split(":").pop()),
      };
      await withRelay(async (a) => {
        aPorts.smtp = a.addr("smtp").port;
        aPorts.https = Number(a.relay.addresses.https!.split(":").pop());
        aCa.push(a.caPem);
        const dnsmasq = await startDnsmasq([
          "--address=/b.test/127.0.0.2",
          "--address=/a.test/127.0.0.1",
          "--mx-host=b.test,b.test,10",
          "--mx-host=a.test,a.test,10",
          `--txt-record=${DKIM_SELECTOR}._domainkey.a.test,${
            dkimDnsRecord(dkimKey(a.relay.config).privateKeyPem)
          }`,
          `--txt-record=${DKIM_SELECTOR}._domainkey.b.test,${
            dkimDnsRecord(dkimKey(b.relay.config).privateKeyPem)
          }`,
        ]);
        server = systemResolver(dnsmasq.server);
        try {
          const alice = await createAccount(a, "alice0001");
          const bob = await createAccount(b, "bobby0001");
          await submitEncrypted(a, alice, [bob.address]);
          await waitFor(
            "a.test -> b.test",
            async () => (await inboxBodies(b, bob.address)).length > 0,
          );
          await submitEncrypted(b, bob, [alice.address]);
          await waitFor(
            "b.test -> a.test",
            async () => (await inboxBodies(a, alice.address)).length > 0,
          );
          await waitFor("the counters", async () => {
            const stats = await b.relay.services.store.listFederationStats();
            return stats.some((s) => s.domain === "a.test" && s.received === 1 && s.sent === 1);
          });
        } finally {
          await dnsmasq.stop();
        }
      }, {
        overrides: { domain: "a.test", turn_port: 0, ...listenOn("127.0.0.1") },
        relay: { dns, federation: { ports: bPorts, caCerts: [b.caPem] } },
      });
    }, {
      overrides: { domain: "b.test", turn_port: 0, ...listenOn("127.0.0.2") },
      relay: { dns, federation: { ports: aPorts, caCerts: aCa } },
    });
  },
);

Deno.test("federation: by default, submissions to address literals at non-public addresses are refused at RCPT", async () => {
  await withRelay(async (a) => {
    const alice = await createAccount(a, "alice0001");
    const c = await SmtpTestClient.connect(a.addr("submissions"), { tls: true, caPem: a.caPem });
    try {
      await c.reply();
      await c.cmd("EHLO client.test");
      await c.login(alice.address, alice.password);
      assert.equal((await c.cmd(`MAIL FROM:<${alice.address}>`)).code, 250);
      const refused: [string, string][] = [
        ["x@[127.0.0.2]", "loopback"],
        ["x@[10.0.0.5]", "private"],
        ["x@[192.168.1.1]", "private"],
        ["x@[IPv6:::1]", "loopback"],
        ["x@[IPv6:::ffff:127.0.0.1]", "loopback"],
        ["x@[IPv6:fd00::1]", "private"],
        ["x@[169.254.169.254]", "link-local"],
        ["x@[100.64.0.1]", "shared"],
        ["x@[0.0.0.0]", "unspecified"],
      ];
      for (const [to, kind] of refused) {
        const r = await c.cmd(`RCPT TO:<${to}>`);
        assert.equal(r.code, 550, to);
        assert.match(r.text, /^550 5\.1\.2 /, to);
        assert.ok(
          r.text.includes(`destination address is not public (${kind})`),
          `${to}: ${r.text}`,
        );
      }
      // A public address literal and the relay's own addresses are taken.
      assert.equal((await c.cmd("RCPT TO:<x@[93.184.216.34]>")).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${alice.address}>`)).code, 250);
    } finally {
      c.close();
    }
  }, { relay: { manualQueue: true } });
});

/** A TCP listener standing in for an internal service: it counts connections and closes them. */
function trapListener(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const trap = { port: listener.addr.port, accepted: 0, close: async () => {} };
  const serving = (async () => {
    for await (const conn of listener) {
      trap.accepted++;
      conn.close();
    }
  })();
  trap.close = async () => {
    listener.close();
    await serving;
  };
  return trap;
}

/**
 * Relay B (b.test, bob) on 127.0.0.2, ready to take mail; a trap on 127.0.0.3; relay A (a.test)
 * with `aOverrides` and the queue run by hand, whose DNS gives b.test the MX hosts of `mx` (by
 * preference, in order) at their addresses.
 */
async function withPrivatePeers(
  mx: [string, string[]][],
  aOverrides: Record<string, unknown>,
  fn: (a: TestRelay, b: TestRelay, trap: { accepted: number }) => Promise<void>,
) {
  const tables = {
    mx: { "b.test": mx.map(([exchange], i) => ({ preference: 10 * (i + 1), exchange })) },
    addresses: Object.fromEntries(mx),
    txt: {} as Record<string, string[]>,
  };
  const dns = fakeDns(tables);
  const trap = trapListener("127.0.0.3");
  try {
    await withRelay(async (b) => {
      const bPorts = {
        smtp: b.addr("smtp").port,
        https: Number(b.relay.addresses.https!.split(":").pop()),
      };
      const ports = (address: string) =>
        address.endsWith("127.0.0.2")
          ? bPorts
          : address === "127.0.0.3"
          ? { smtp: trap.port, https: trap.port }
          : { smtp: 1, https: 1 };
      await withRelay((a) => {
        // B checks A's DKIM signature.
        tables.txt[`${DKIM_SELECTOR}._domainkey.a.test`] = [
          dkimDnsRecord(dkimKey(a.relay.config).privateKeyPem),
        ];
        return fn(a, b, trap);
      }, {
        overrides: { domain: "a.test", ...listenOn("127.0.0.1"), ...aOverrides },
        relay: { dns, manualQueue: true, federation: { ports, caCerts: [b.caPem] } },
      });
    }, { overrides: { domain: "b.test", ...listenOn("127.0.0.2") }, relay: { dns } });
  } finally {
    await trap.close();
  }
}

Deno.test("federation: by default, a domain whose addresses are all non-public bounces at once (5.4.4), nothing connected", async () => {
  const addresses = [
    "127.0.0.2",
    "::ffff:127.0.0.2",
    "127.0.0.3",
    "10.0.0.5",
    "::1",
    "169.254.169.254",
    "100.64.0.1",
  ];
  // The default: listenOn() allows loopback peers, this relay does not.
  const defaults = { outbound_allow_private: false };
  await withPrivatePeers([["b.test", addresses]], defaults, async (a, b, trap) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    assert.equal(await a.relay.outbound.runOnce(), 1);
    assert.equal(await a.relay.services.store.countQueued(), 0, "failed for good, no retries");
    assert.equal((await inboxBodies(b, bob.address)).length, 0);
    assert.equal(trap.accepted, 0);
    const [bounce] = await inboxBodies(a, alice.address);
    assert.match(bounce, /^From: Mail Delivery System <MAILER-DAEMON@a\.test>/m);
    assert.match(bounce, /Final-Recipient: rfc822; bobby0001@b\.test/);
    assert.match(bounce, /Action: failed\r\nStatus: 5\.4\.4\r\n/);
    assert.match(
      bounce,
      /Destination address is not public: b\.test is at 127\.0\.0\.2 \(loopback\), ::ffff:127\.0\.0\.2 \(loopback\), 127\.0\.0\.3 \(loopback\), 10\.0\.0\.5 \(private\), ::1 \(loopback\) and 2 more/,
    );
  });
});

Deno.test("federation: outbound_allowed_networks admits one non-public address; the others of the answer are skipped", async () => {
  const mx: [string, string[]][] = [
    ["mx0.b.test", ["127.0.0.3"]],
    ["b.test", ["10.0.0.5", "::1", "127.0.0.3", "127.0.0.2"]],
  ];
  const allowOne = { outbound_allow_private: false, outbound_allowed_networks: "127.0.0.2/32" };
  await withPrivatePeers(mx, allowOne, async (a, b, trap) => {
    const alice = await createAccount(a, "alice0001");
    const bob = await createAccount(b, "bobby0001");
    await submitEncrypted(a, alice, [bob.address]);
    assert.equal(await a.relay.outbound.runOnce(), 1);
    assert.equal((await inboxBodies(b, bob.address)).length, 1);
    assert.equal(trap.accepted, 0);
    assert.equal(await a.relay.services.store.countQueued(), 0);
    assert.equal((await inboxBodies(a, alice.address)).length, 0, "no bounce");
  });
});
