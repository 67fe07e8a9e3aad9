import assert from "node:assert/strict";
import { type OutboundOptions, OutboundService } from "./outbound.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import type { PeerPorts } from "./transport.ts";
import { httpAnswer, httpsPeer, silentPeer, testCertificate } from "./testdata/fake_peers.ts";
import { bytesBody } from "../store/message_input.ts";
import { httpsPolicyFetcher, MtaSts } from "./mta_sts.ts";
import { addressPolicy } from "../net/mod.ts";

const cert = await testCertificate(["127.0.0.1", "127.0.0.4", "127.0.0.5", "127.0.0.6"]);
const enc = new TextEncoder();
/** The fake peers listen on loopback addresses, which delivery refuses unless allowed. */
const LOOPBACK_PEERS = addressPolicy({ allow: ["127.0.0.0/8"] });
const NO_DNS = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: () => Promise.resolve([]),
};

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000) {
  const end = performance.now() + ms;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Harness {
  outbound: OutboundService;
  store: ReturnType<typeof openSqliteStore>;
  bounces: { sender: string; text: string }[];
  clock: { now: number };
  send(to: string[]): Promise<number>;
}

async function withOutbound(
  ports: Record<string, PeerPorts>,
  options: Partial<OutboundOptions>,
  fn: (h: Harness) => Promise<void>,
) {
  const store = openSqliteStore(":memory:");
  const clock = { now: Date.UTC(2026, 10, 23, 8) };
  const bounces: Harness["bounces"] = [];
  const outbound = new OutboundService({
    store,
    dns: NO_DNS,
    domain: "[127.0.0.1]",
    hostname: "127.0.0.1",
    sign: () => Promise.resolve(new Uint8Array(0)),
    deliverBounce(sender, message) {
      bounces.push({ sender, text: new TextDecoder().decode(message) });
      return Promise.resolve();
    },
    allowed: () => Promise.resolve(true),
    refuseAddress: LOOPBACK_PEERS,
    lifetimeMs: 3600_000,
    now: () => clock.now,
    ports: (address) => ports[address] ?? { smtp: 1, https: 1 },
    caCerts: [cert.caPem!],
    deadlines: { connectMs: 2000, tlsMs: 20_000, commandMs: 20_000, attemptMs: 60_000 },
    backoff: { baseMs: 3600_000, capMs: 3600_000 },
    ...options,
  });
  let n = 0;
  const send = (to: string[]) =>
    store.enqueue({
      sender: "alice@[127.0.0.1]",
      body: bytesBody(enc.encode(`Subject: ${++n}\r\nMessage-ID: <m${n}@a>\r\n\r\nbody\r\n`)),
      recipients: to,
      now: clock.now,
    });
  try {
    await fn({ outbound, store, bounces, clock, send });
  } finally {
    await outbound.stop();
    await store.close();
  }
}

const ok200 = () => ({ raw: httpAnswer(200, "250 OK") });

Deno.test("OutboundService: a silent peer does not hold up mail for a healthy one", async () => {
  const silent = await silentPeer("127.0.0.4");
  const healthy = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  const ports = {
    "127.0.0.4": { smtp: silent.port, https: silent.port },
    "127.0.0.5": { smtp: 1, https: healthy.port },
  };
  try {
    const metrics = createRelayMetrics();
    await withOutbound(ports, { metrics }, async (h) => {
      h.outbound.start();
      await h.send(["x@[127.0.0.4]"]);
      h.outbound.kick();
      await waitFor("the silent peer's connection", () => silent.accepted > 0);
      for (let i = 0; i < 5; i++) {
        await h.send([`u${i}@[127.0.0.5]`]);
        h.outbound.kick();
      }
      await waitFor("five messages at the healthy peer", () => healthy.requests.length === 5);
      // They arrived while the silent peer's attempt was still hanging.
      assert.equal(silent.open, 1);
      await waitFor("their outcomes", async () => (await h.store.countQueued()) === 1);
      const [d] = await h.outbound.destinations();
      assert.deepEqual([d.domain, d.pending, d.active], ["[127.0.0.4]", 1, 1]);
      await h.outbound.refreshMetrics();
      const text = metrics.render();
      assert.match(text, /^tern_queue_length 1$/m);
      assert.match(text, /^tern_federation_queued\{destination="\[127\.0\.0\.4\]"\} 1$/m);
      assert.match(text, /^tern_federation_active\{destination="\[127\.0\.0\.4\]"\} 1$/m);
      assert.match(text, /^tern_federation_concurrency\{destination="\[127\.0\.0\.4\]"\} 2$/m);
      assert.doesNotMatch(text, /tern_federation_queued\{destination="\[127\.0\.0\.5\]"/);
    });
    // Stopping cut the hanging attempt.
    await waitFor("the silent connection to close", () => silent.open === 0);
  } finally {
    await silent.close();
    await healthy.close();
  }
});

Deno.test("OutboundService: connections are reused and the window caps them", async () => {
  const peer = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  try {
    await withOutbound({ "127.0.0.5": { smtp: 1, https: peer.port } }, {
      maxConcurrency: 3,
    }, async (h) => {
      for (let i = 0; i < 30; i++) await h.send([`u${i}@[127.0.0.5]`]);
      assert.equal(await h.outbound.runOnce(), 30);
      assert.equal(peer.requests.length, 30);
      assert.ok(peer.connections <= 3, `${peer.connections} connections`);
      assert.equal(await h.store.countQueued(), 0);
      const [stats] = await h.store.listFederationStats();
      assert.equal(stats.sent, 30);
    });
  } finally {
    await peer.close();
  }
});

Deno.test("OutboundService: deferred mail goes as soon as its peer sends mail again", async () => {
  let peer: Awaited<ReturnType<typeof httpsPeer>> | null = null;
  const ports: Record<string, PeerPorts> = { "127.0.0.6": { smtp: 1, https: 1 } };
  try {
    await withOutbound(ports, {}, async (h) => {
      await h.send(["a@[127.0.0.6]"]);
      await h.send(["b@[127.0.0.6]"]);
      // Down: nothing listens on 127.0.0.6.
      assert.ok(await h.outbound.runOnce() >= 2);
      const [d] = await h.outbound.destinations();
      assert.equal(d.state, "backoff");
      assert.equal(d.pending, 2);
      // Back, but the clock has not moved: nothing is due, the backoff is an hour.
      peer = await httpsPeer({ tls: cert, host: "127.0.0.6", script: ok200 });
      ports["127.0.0.6"] = { smtp: 1, https: peer.port };
      assert.equal(await h.outbound.runOnce(), 0);
      // The peer sends us mail: its deferred mail goes now.
      h.outbound.peerAnswered("[127.0.0.6]");
      assert.equal(await h.outbound.runOnce(), 2);
      assert.equal(peer.requests.length, 2);
      assert.equal(await h.store.countQueued(), 0);
    });
  } finally {
    await (peer as Awaited<ReturnType<typeof httpsPeer>> | null)?.close();
  }
});

Deno.test("OutboundService: new mail probes a backed-off peer and its success releases the rest", async () => {
  let peer: Awaited<ReturnType<typeof httpsPeer>> | null = null;
  const ports: Record<string, PeerPorts> = {};
  try {
    await withOutbound(ports, {}, async (h) => {
      await h.send(["a@[127.0.0.6]"]);
      await h.outbound.runOnce();
      assert.equal((await h.outbound.destinations())[0].state, "backoff");
      peer = await httpsPeer({ tls: cert, host: "127.0.0.6", script: ok200 });
      ports["127.0.0.6"] = { smtp: 1, https: peer.port };
      await h.send(["b@[127.0.0.6]"]);
      await h.outbound.runOnce();
      assert.equal(await h.store.countQueued(), 0);
      assert.deepEqual(
        peer.requests.map((r) => r.headers.find(([k]) => k === "x-mail-to")![1]),
        ["b@[127.0.0.6]", "a@[127.0.0.6]"],
        "the new message probed, then the deferred one followed",
      );
    });
  } finally {
    await (peer as Awaited<ReturnType<typeof httpsPeer>> | null)?.close();
  }
});

Deno.test("OutboundService: an entry expires on a timer with a bounce, not at a next attempt", async () => {
  const metrics = createRelayMetrics();
  await withOutbound({}, { lifetimeMs: 300, now: Date.now, metrics }, async (h) => {
    const accepted = Date.now();
    await h.store.enqueue({
      sender: "alice@[127.0.0.1]",
      body: bytesBody(enc.encode("Subject: x\r\n\r\nbody\r\n")),
      recipients: ["a@[127.0.0.6]"],
      now: accepted,
    });
    h.outbound.start();
    await waitFor("the bounce", () => h.bounces.length === 1, 5000);
    // One attempt (and its immediate retry) only: the backoff is an hour.
    const text = h.bounces[0].text;
    assert.match(text, /Status: 4\.4\.7/);
    assert.match(text, /Diagnostic-Code: smtp; Gave up after 1 attempt: /);
    assert.equal(await h.store.countQueued(), 0);
    assert.equal(metrics.deliveries.get({ target: "remote", outcome: "failed" }), 1);
  });
});

Deno.test("OutboundService: a message whose stored body cannot be read still bounces at its expiry", async () => {
  await withOutbound({}, { lifetimeMs: 300, now: Date.now }, async (h) => {
    // A body file removed or cut short under the relay: every read of it fails.
    h.store.openBody = (id) =>
      Promise.reject(new Error(`Cannot read body ${id}: its file 0123 is missing`));
    await h.store.enqueue({
      sender: "alice@[127.0.0.1]",
      body: bytesBody(enc.encode("Subject: x\r\n\r\nbody\r\n")),
      recipients: ["a@[127.0.0.6]"],
      now: Date.now(),
    });
    h.outbound.start();
    await waitFor("the bounce", () => h.bounces.length === 1, 5000);
    assert.match(h.bounces[0].text, /Status: 4\.4\.7/);
    assert.equal(await h.store.countQueued(), 0);
  });
});

Deno.test("OutboundService: delivered mail is counted with its latency", async () => {
  const peer = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  const metrics = createRelayMetrics();
  try {
    await withOutbound({ "127.0.0.5": { smtp: 1, https: peer.port } }, { metrics }, async (h) => {
      await h.send(["a@[127.0.0.5]", "b@[127.0.0.5]"]);
      await h.outbound.runOnce();
      assert.equal(peer.requests.length, 1, "two recipients, one request");
      assert.equal(metrics.deliveries.get({ target: "remote", outcome: "delivered" }), 2);
      assert.match(metrics.render(), /tern_delivery_latency_seconds_count\{target="remote"\} 2/);
    });
  } finally {
    await peer.close();
  }
});

Deno.test("OutboundService: a message it cannot read or sign waits its backoff, with no attempt on the peer", async () => {
  const healthy = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  const ports = { "127.0.0.5": { smtp: 1, https: healthy.port } };
  try {
    let signs = 0;
    const sign = () => {
      signs++;
      return Promise.reject(new Error("disk read failed"));
    };
    await withOutbound(ports, { sign, backoff: { baseMs: 60_000, capMs: 60_000 } }, async (h) => {
      const id = await h.send(["u@[127.0.0.5]"]);
      assert.equal(await h.outbound.runOnce(), 1);
      // Once, not again and again: the recipient is deferred with the reason, the peer untouched.
      assert.equal(await h.outbound.runOnce(), 0);
      assert.equal(signs, 1);
      assert.equal(healthy.requests.length, 0);
      const [r] = (await h.store.getQueueEntry(id))!.recipients;
      assert.equal(r.status, "deferred");
      assert.match(r.lastError ?? "", /^Local failure: disk read failed/);
      assert.ok(r.nextAttemptAt >= h.clock.now + 30_000, "backoff with jitter, not at once");
      const [d] = await h.outbound.destinations();
      assert.equal(d.state, "open", "the peer is not blamed");
    });
  } finally {
    await healthy.close();
  }
});

Deno.test("OutboundService: a store failure before the attempt does not strand the message: it is tried again", async () => {
  const peer = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  try {
    const backoff = { baseMs: 60_000, capMs: 60_000 };
    await withOutbound({ "127.0.0.5": { smtp: 1, https: peer.port } }, { backoff }, async (h) => {
      const openBody = h.store.openBody.bind(h.store);
      let failures = 1;
      h.store.openBody = (id) =>
        failures-- > 0 ? Promise.reject(new Error("disk I/O error")) : openBody(id);
      await h.send(["u@[127.0.0.5]"]);
      assert.equal(await h.outbound.runOnce(), 1, "the first attempt");
      assert.equal(peer.requests.length, 0);
      // Still queued in the store; after a backoff (not a restart, not its expiry) it goes.
      h.clock.now += 2 * 60_000;
      assert.equal(await h.outbound.runOnce(), 1, "the attempt after the store failure");
      assert.equal(peer.requests.length, 1);
      assert.equal(await h.store.countQueued(), 0);
    });
  } finally {
    await peer.close();
  }
});

Deno.test("OutboundService: a queue read that fails is asked again after a backoff, not in a tight loop", async () => {
  const backoff = { baseMs: 60_000, capMs: 60_000 };
  await withOutbound({}, { backoff }, async (h) => {
    await h.send(["u@[127.0.0.9]"]);
    assert.ok(await h.outbound.runOnce() >= 1);
    const due = h.store.dueRecipientsFor.bind(h.store);
    let reads = 0;
    h.store.dueRecipientsFor = () => {
      // Past 1000 reads it is a loop: the store works again, so the test ends either way.
      if (++reads >= 1000) h.store.dueRecipientsFor = due;
      return Promise.reject(new Error("database is locked"));
    };
    h.clock.now += 2 * 60_000;
    await h.outbound.runOnce();
    assert.ok(reads <= 2, `${reads} reads of a failing store`);
    h.store.dueRecipientsFor = due;
    h.clock.now += 2 * 60_000;
    assert.equal(await h.outbound.runOnce(), 1, "once the store works, the mail goes on");
  });
});

Deno.test("OutboundService: an expiry the store cannot write (disk full) is tried again later, not at once over and over", async () => {
  await withOutbound({}, { lifetimeMs: 100, now: Date.now }, async (h) => {
    await h.store.enqueue({
      sender: "alice@[127.0.0.1]",
      body: bytesBody(enc.encode("Subject: x\r\n\r\nbody\r\n")),
      recipients: ["a@[127.0.0.9]"],
      now: Date.now(),
    });
    await h.outbound.runOnce();
    const record = h.store.recordAttempt.bind(h.store);
    let writes = 0;
    h.store.recordAttempt = () => {
      writes++;
      return Promise.reject(new Error("database or disk is full"));
    };
    h.outbound.start();
    await new Promise((r) => setTimeout(r, 600));
    assert.ok(writes >= 1, "the expiry was tried");
    assert.ok(writes <= 3, `${writes} expiry writes in 0.5 s`);
    h.store.recordAttempt = record;
  });
});

Deno.test("OutboundService: stopping does not wait for an MTA-STS policy host that never answers", async () => {
  const silent = await silentPeer("127.0.0.4");
  const dns = {
    mx: () => Promise.resolve([]),
    addresses: (h: string) => Promise.resolve([h === "mta-sts.b.test" ? "127.0.0.4" : "127.0.0.5"]),
    txt: (n: string) => Promise.resolve(n === "_mta-sts.b.test" ? ["v=STSv1; id=1"] : []),
  };
  // Ten minutes of patience for the silent host: a stop that waited for its fetch would take
  // that long; one that does not is done at once (the bound below leaves any machine time).
  const deadlines = { connectMs: 5000, tlsMs: 600_000, commandMs: 600_000, attemptMs: 900_000 };
  const port = () => silent.port;
  const mtaSts = new MtaSts(
    dns,
    httpsPolicyFetcher(dns, { port, deadlines, refuseAddress: LOOPBACK_PEERS }),
  );
  try {
    await withOutbound({}, { dns, mtaSts }, async (h) => {
      await h.send(["u@b.test"]);
      h.outbound.start();
      await waitFor("the policy fetch", () => silent.accepted > 0);
      const t0 = performance.now();
      await h.outbound.stop();
      const took = performance.now() - t0;
      assert.ok(took < 60_000, `stopping took ${Math.round(took)} ms`);
    });
  } finally {
    await silent.close();
  }
});

Deno.test("OutboundService: a failure whose bounce the store cannot take stays queued and bounces later", async () => {
  let failBounces = 1;
  const bounces: string[] = [];
  // Mail to a domain the federation policy refuses fails for good (5.7.1) with no peer at all.
  const options: Partial<OutboundOptions> = {
    allowed: () => Promise.resolve(false),
    backoff: { baseMs: 60_000, capMs: 60_000 },
    deliverBounce(_sender, message) {
      if (failBounces-- > 0) return Promise.reject(new Error("database or disk is full"));
      bounces.push(new TextDecoder().decode(message));
      return Promise.resolve();
    },
  };
  await withOutbound({}, options, async (h) => {
    const id = await h.send(["u@[127.0.0.5]"]);
    assert.equal(await h.outbound.runOnce(), 1);
    assert.equal(bounces.length, 0);
    // Not recorded as failed: the sender was not told yet.
    const [r] = (await h.store.getQueueEntry(id))!.recipients;
    assert.equal(r.status, "deferred");
    assert.match(r.lastError ?? "", /not allowed by this relay's federation policy/);
    h.clock.now += 2 * 60_000;
    assert.equal(await h.outbound.runOnce(), 1, "tried again after its backoff");
    assert.equal(bounces.length, 1, "the bounce, once the store takes it");
    assert.match(bounces[0], /Status: 5\.7\.1/);
    // Stored before the entry (and its body) went: it quotes the original's header.
    assert.match(bounces[0], /Message-ID: <m1@a>/);
    assert.equal(await h.store.countQueued(), 0);
  });
});

Deno.test("OutboundService: an expiry whose bounce the store cannot take stays queued and expires again", async () => {
  let failBounces = 1;
  const bounces: string[] = [];
  const options: Partial<OutboundOptions> = {
    lifetimeMs: 1800_000,
    deliverBounce(_sender, message) {
      if (failBounces-- > 0) return Promise.reject(new Error("database or disk is full"));
      bounces.push(new TextDecoder().decode(message));
      return Promise.resolve();
    },
  };
  await withOutbound({}, options, async (h) => {
    // Nothing listens on 127.0.0.9: deferred, with an hour's backoff.
    await h.send(["u@[127.0.0.9]"]);
    assert.ok(await h.outbound.runOnce() >= 1);
    assert.equal(await h.store.countQueued(), 1);
    // Expired, and not yet due again (the backoff is an hour): only the expiry bounces it.
    h.clock.now += 1800_000;
    assert.equal(await h.outbound.runOnce(), 0);
    assert.equal(bounces.length, 0);
    assert.equal(await h.store.countQueued(), 1, "still queued: the sender was not told");
    await h.outbound.runOnce();
    assert.equal(bounces.length, 1, "expired again, with its bounce");
    assert.match(bounces[0], /Status: 4\.4\.7/);
    assert.equal(await h.store.countQueued(), 0);
  });
});

Deno.test("OutboundService: a relay that dies while it stores a bounce bounces again after its restart", async () => {
  let stuck: (() => void) | null = null;
  const options: Partial<OutboundOptions> = {
    allowed: () => Promise.resolve(false),
    // The process dies here: the bounce is never stored.
    deliverBounce: () =>
      new Promise<void>((_, reject) => (stuck = () => reject(new Error("killed")))),
  };
  await withOutbound({}, options, async (h) => {
    await h.send(["u@[127.0.0.5]"]);
    h.outbound.kick();
    await waitFor("the bounce to be stored", () => stuck !== null);
    // The restarted relay: a new outbound service on the same store.
    const bounces: string[] = [];
    const restarted = new OutboundService({
      store: h.store,
      dns: NO_DNS,
      domain: "[127.0.0.1]",
      hostname: "127.0.0.1",
      sign: () => Promise.resolve(new Uint8Array(0)),
      deliverBounce(_sender, message) {
        bounces.push(new TextDecoder().decode(message));
        return Promise.resolve();
      },
      allowed: () => Promise.resolve(false),
      lifetimeMs: 3600_000,
      now: () => h.clock.now,
    });
    try {
      await restarted.runOnce();
      // The dead relay's claim on the recipient holds until its lease ends (a worker that only
      // stalls may still store its outcome), then the mail is the restarted relay's.
      assert.equal(bounces.length, 0, "claimed by the dead relay");
      h.clock.now += 5 * 60_000;
      await restarted.runOnce();
      assert.equal(bounces.length, 1, "the sender learns of the failure");
      assert.match(bounces[0], /Status: 5\.7\.1/);
      assert.equal(await h.store.countQueued(), 0);
    } finally {
      await restarted.stop();
      (stuck as (() => void) | null)?.();
    }
  });
});

Deno.test("OutboundService: by default, address literals at non-public addresses bounce (5.4.4) and are not connected to", async () => {
  // A peer that would take the mail: only the address policy keeps the worker away from it.
  const peer = await httpsPeer({ tls: cert, host: "127.0.0.5", script: ok200 });
  const literals = [
    "[127.0.0.5]",
    "[10.0.0.5]",
    "[IPv6:::1]",
    "[IPv6:::ffff:127.0.0.5]",
    "[169.254.169.254]",
    "[100.64.0.1]",
    "[0.0.0.0]",
    "[IPv6:fd00::1]",
  ];
  const ports = () => ({ smtp: peer.port, https: peer.port });
  try {
    // No refuseAddress: the default policy, public addresses only.
    await withOutbound({}, { refuseAddress: undefined, ports }, async (h) => {
      for (const l of literals) await h.send([`u@${l}`]);
      assert.equal(await h.outbound.runOnce(), literals.length);
      assert.equal(peer.connections, 0);
      assert.equal(await h.store.countQueued(), 0, "failed for good: no retries");
      assert.equal(h.bounces.length, literals.length);
      for (const b of h.bounces) {
        assert.match(b.text, /Status: 5\.4\.4/);
        assert.match(b.text, /Destination address is not public/);
      }
      const all = h.bounces.map((b) => b.text).join("\n");
      for (const kind of ["loopback", "private", "link-local", "shared", "unspecified"]) {
        assert.ok(all.includes(`(${kind})`), kind);
      }
    });
  } finally {
    await peer.close();
  }
});

Deno.test("OutboundService: of a domain's addresses, refused ones are skipped and the permitted one is used", async () => {
  const mxCert = await testCertificate(["mx1.b.test", "mx2.b.test"]);
  const trap = await httpsPeer({ tls: mxCert, host: "127.0.0.4", script: ok200 });
  const peer = await httpsPeer({ tls: mxCert, host: "127.0.0.5", script: ok200 });
  const dns = {
    mx: (d: string) =>
      Promise.resolve(
        d === "b.test"
          ? [{ preference: 10, exchange: "mx1.b.test" }, { preference: 20, exchange: "mx2.b.test" }]
          : [],
      ),
    addresses: (h: string) =>
      Promise.resolve(
        h === "mx1.b.test" ? ["127.0.0.4"] : h === "mx2.b.test" ? ["10.0.0.5", "127.0.0.5"] : [],
      ),
    txt: () => Promise.resolve([]),
  };
  const ports = {
    "127.0.0.4": { smtp: trap.port, https: trap.port },
    "127.0.0.5": { smtp: 1, https: peer.port },
  };
  try {
    // As an operator allowing one address of a private network: 127.0.0.5 stands in for it.
    const refuseAddress = addressPolicy({ allow: ["127.0.0.5"] });
    await withOutbound(ports, { dns, refuseAddress, caCerts: [mxCert.caPem!] }, async (h) => {
      await h.send(["u@b.test"]);
      assert.equal(await h.outbound.runOnce(), 1);
      assert.equal(peer.requests.length, 1);
      assert.equal(trap.connections, 0);
      assert.equal(await h.store.countQueued(), 0);
      assert.equal(h.bounces.length, 0);
    });
  } finally {
    await trap.close();
    await peer.close();
  }
});
