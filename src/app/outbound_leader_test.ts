import assert from "node:assert/strict";
import { type LeaderLock, OutboundLeader } from "./outbound_leader.ts";
import { EventBus } from "../events/mod.ts";
import type { OutboundService } from "../federation/mod.ts";

/** A lock as the database keeps it: one holder; `drop()` ends the holder's session. */
class Locks {
  holder: string | null = null;
  of(name: string): LeaderLock & { drop(): void } {
    return {
      acquire: () => {
        this.holder ??= name;
        return Promise.resolve(this.holder === name);
      },
      drop: () => {
        if (this.holder === name) this.holder = null;
      },
      close: () => {
        if (this.holder === name) this.holder = null;
        return Promise.resolve();
      },
    };
  }
}

/** A worker that records what it is asked (the real one delivers: federation tests). */
function recordingWorker(log: string[], name: string): OutboundService {
  return {
    start: () => log.push(`${name} start`),
    stop: () => Promise.resolve(void log.push(`${name} stop`)),
    kick: () => log.push(`${name} kick`),
    peerAnswered: (d: string) => log.push(`${name} peer ${d}`),
    retryEntry: (id: number) => Promise.resolve(log.push(`${name} retry ${id}`) > 0),
    destinations: () => Promise.resolve([]),
  } as unknown as OutboundService;
}

function instance(
  name: string,
  locks: Locks,
  bus: EventBus,
  log: string[],
  retried: number[],
) {
  const lock = locks.of(name);
  let n = 0;
  const leader = new OutboundLeader({
    lock,
    create: () => recordingWorker(log, `${name}${++n}`),
    idle: recordingWorker(log, `${name}-idle`),
    store: {
      getQueueEntry: (id) =>
        Promise.resolve(
          id === 7 ? { id, sender: "s", bodyId: 1, size: 1, createdAt: 0, recipients: [] } : null,
        ),
      retryQueueEntry: (id) => Promise.resolve(retried.push(id) > 0),
    },
    bus,
    everyMs: 10,
  });
  return { leader, lock };
}

/** Two buses bridged as the PostgreSQL channel bridges instances. */
function bridged(): [EventBus, EventBus] {
  const a = new EventBus();
  const b = new EventBus();
  a.connect({ send: (e) => b.receive(e) });
  b.connect({ send: (e) => a.receive(e) });
  return [a, b];
}

async function until(done: () => boolean, why: string) {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${why}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("outbound leader: one instance runs the worker; the other's mail and retries reach it; it takes over when the holder goes", async () => {
  const locks = new Locks();
  const [busA, busB] = bridged();
  const log: string[] = [];
  const retried: number[] = [];
  const a = instance("a", locks, busA, log, retried);
  const b = instance("b", locks, busB, log, retried);
  try {
    await a.leader.start();
    await b.leader.start();
    assert.equal(a.leader.leading, true);
    assert.equal(b.leader.leading, false);
    assert.deepEqual(log, ["a1 start"]);
    // Mail queued on B, and a peer's mail accepted on B, reach A's worker.
    b.leader.queued();
    busB.publish({ type: "federation.received", domain: "peer.test" });
    assert.deepEqual(log.slice(1), ["a1 kick", "a1 peer peer.test"]);
    // An operator's retry on B: stored there, A's worker wakes the destinations.
    assert.equal(await b.leader.retryEntry(7), true);
    assert.deepEqual(retried, [7]);
    await until(() => log.includes("a1 retry 7"), "A's worker retries");
    assert.equal(await b.leader.retryEntry(8), false, "no such entry");
    // A shuts down: its worker stops, then the lock goes, and B takes over with a fresh worker.
    await a.leader.close();
    await until(() => b.leader.leading, "B takes over");
    assert.ok(log.indexOf("a1 stop") < log.indexOf("b1 start"));
  } finally {
    await a.leader.close();
    await b.leader.close();
  }
  assert.equal(locks.holder, null, "closing gives the lock up");
});

Deno.test("outbound leader: a holder that finds its lock gone (its session dropped) stops its worker", async () => {
  const locks = new Locks();
  const [busA, busB] = bridged();
  const log: string[] = [];
  const a = instance("a", locks, busA, log, []);
  const b = instance("b", locks, busB, log, []);
  try {
    await a.leader.start();
    // The database let go of A's lock and B took it before A looked again.
    locks.holder = "b";
    await until(() => !a.leader.leading, "A stops");
    assert.ok(log.includes("a1 stop"));
    await b.leader.start();
    assert.equal(b.leader.leading, true);
    assert.equal(a.leader.leading, false);
    assert.ok(log.indexOf("a1 stop") < log.indexOf("b1 start"));
  } finally {
    await a.leader.close();
    await b.leader.close();
  }
});
