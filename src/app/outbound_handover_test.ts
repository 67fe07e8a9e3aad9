// Two outbound workers on one store, as around a takeover of the outbound lock
// (outbound_leader.ts): the one that lost the lock may still be sending when the next one loads
// the queue. The new worker must not send what the old one is sending; when the old one's lease
// ends without an outcome (it died, or stalls), the mail goes once; and the old one's late outcome
// does not overwrite the new one's. On SQLite (one store object) and on PostgreSQL (two store
// instances on one database, as two tern instances).

import assert from "node:assert/strict";
import { OutboundService } from "../federation/mod.ts";
import { httpAnswer, httpsPeer, testCertificate } from "../federation/testdata/fake_peers.ts";
import type { PeerPorts } from "../federation/transport.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { startPostgresStore } from "../store/postgres/mod.ts";
import { bytesBody } from "../store/message_input.ts";
import type { Store } from "../store/types.ts";
import { addressPolicy } from "../net/mod.ts";
import { postgresNeed, startPostgres, stopsServerOfFile } from "../../tests/support/postgres.ts";

const cert = await testCertificate(["127.0.0.5"]);
const NO_DNS = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: () => Promise.resolve([]),
};
/** Claim times are on the workers' clocks (moved by the test); renewals run every second. */
const LEASE_MS = 3_000;
const SLOW = "[127.0.0.5]";

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = performance.now() + ms;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function worker(store: Store, clock: { now: number }, ports: Record<string, PeerPorts>) {
  return new OutboundService({
    store,
    dns: NO_DNS,
    domain: "[127.0.0.1]",
    hostname: "127.0.0.1",
    sign: () => Promise.resolve(new Uint8Array(0)),
    deliverBounce: () => Promise.resolve(),
    allowed: () => Promise.resolve(true),
    lifetimeMs: 7 * 86400_000,
    now: () => clock.now,
    ports: (address) => ports[address] ?? { smtp: 1, https: 1 },
    caCerts: [cert.caPem!],
    // The stalled delivery lasts until the test stops its worker.
    deadlines: { connectMs: 10_000, tlsMs: 30_000, commandMs: 600_000, attemptMs: 600_000 },
    backoff: { baseMs: 3600_000, capMs: 3600_000 },
    claimLeaseMs: LEASE_MS,
    // The fake peer listens on loopback, which the default policy refuses.
    refuseAddress: addressPolicy({ allow: ["127.0.0.0/8"] }),
  });
}

/** `a` and `b`: the store as each worker's instance sees it (one object on SQLite). */
async function handover(a: Store, b: Store): Promise<void> {
  let requests = 0;
  // The first request (the old worker's) is answered one byte a minute: a delivery in flight.
  const peer = await httpsPeer({
    tls: cert,
    host: "127.0.0.5",
    script: () => ({ raw: httpAnswer(200, "250 OK"), dripMs: ++requests === 1 ? 60_000 : 0 }),
  });
  const ports = { "127.0.0.5": { smtp: 1, https: peer.port } };
  const t = Date.UTC(2026, 11, 4, 9);
  const clockA = { now: t };
  const clockB = { now: t };
  const workerA = worker(a, clockA, ports);
  const workerB = worker(b, clockB, ports);
  let stoppedA: Promise<void> | null = null;
  const stopA = () => (stoppedA ??= workerA.stop());
  try {
    // One message to the slow peer and to one that is down (so the entry stays queued).
    const q = await a.enqueue({
      sender: "alice@[127.0.0.1]",
      body: bytesBody(new TextEncoder().encode("Subject: once\r\n\r\nbody\r\n")),
      recipients: ["bob@[127.0.0.5]", "carol@[127.0.0.6]"],
      now: t,
    });
    const status = async () =>
      (await b.getQueueEntry(q))!.recipients.map((r) => [r.recipient, r.status, r.attempts]);
    workerA.kick();
    await waitFor("the old worker's delivery at the peer", () => peer.requests.length === 1);
    await waitFor("the down peer's outcome", async () => (await status())[1][1] === "deferred");
    // A long transfer: the old worker renews its claim (its clock moved on).
    clockA.now = t + 2_000;
    await waitFor(
      "the renewed claim",
      async () => (await b.nextAttemptFor(SLOW, t)) === t + 2_000 + LEASE_MS,
    );

    // The new worker loads the queue after the first lease would have ended: it sends nothing.
    clockB.now = t + LEASE_MS + 1;
    await workerB.runOnce();
    assert.equal(peer.requests.length, 1, "the new worker sent what the old one is sending");
    assert.deepEqual((await status())[0], ["bob@[127.0.0.5]", "queued", 0]);

    // The old worker stalls: its lease ends without an outcome, and the new one sends the mail.
    clockB.now = t + 2_000 + LEASE_MS;
    await workerB.runOnce();
    assert.equal(peer.requests.length, 2);
    assert.deepEqual((await status())[0], ["bob@[127.0.0.5]", "delivered", 1]);
    await workerB.runOnce();
    assert.equal(peer.requests.length, 2, "delivered once by the new worker");

    // The old worker's delivery ends (cut as it stops): its outcome is not stored over it.
    await stopA();
    assert.deepEqual(await status(), [
      ["bob@[127.0.0.5]", "delivered", 1],
      ["carol@[127.0.0.6]", "deferred", 1],
    ]);
    const [stats] = (await b.listFederationStats()).filter((s) => s.domain === SLOW);
    assert.deepEqual([stats.sent, stats.failures], [1, 0]);
  } finally {
    await stopA();
    await workerB.stop();
    await peer.close();
  }
}

Deno.test("outbound handover (SQLite): the new worker skips what the old one sends, then sends it once when its lease ends", async () => {
  const store = openSqliteStore(":memory:");
  try {
    await handover(store, store);
  } finally {
    await store.close();
  }
});

const server = postgresNeed.ignore ? null : await startPostgres();

Deno.test({
  name: postgresNeed.title(
    "outbound handover (PostgreSQL, two instances): the new worker skips what the old one sends, then sends it once when its lease ends",
  ),
  ignore: postgresNeed.ignore,
  fn: async () => {
    const url = await server!.createDatabase("handover");
    // The workers' scripted clocks meet to the millisecond: the same offset to the database's
    // clock for both (measured, each instance's would differ by a millisecond or so).
    const a = await startPostgresStore(url, { name: "tern a", clockOffsetMs: 0 });
    const b = await startPostgresStore(url, { name: "tern b", clockOffsetMs: 0 });
    try {
      await handover(a, b);
    } finally {
      await a.close();
      await b.close();
    }
  },
});

stopsServerOfFile(server);
