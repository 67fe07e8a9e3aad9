import assert from "node:assert/strict";
import { Scheduler } from "./scheduler.ts";
import type { Job } from "./destination_queue.ts";

let nextId = 1;
function job(domain: string, fresh = true): Job {
  const id = nextId++;
  return {
    queueId: id,
    domain,
    fresh,
    retries: 0,
    recipients: [{
      id,
      queueId: id,
      recipient: `u${id}@${domain}`,
      domain,
      status: fresh ? "queued" : "deferred",
      attempts: fresh ? 0 : 1,
      nextAttemptAt: 0,
      lastError: null,
      updatedAt: 0,
    }],
  };
}

function scheduler(over: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}) {
  return new Scheduler({
    maxActive: 100,
    initialConcurrency: 2,
    maxConcurrency: 20,
    readyMax: 100,
    backoff: { baseMs: 1000, capMs: 60_000 },
    random: () => 1,
    ...over,
  });
}

Deno.test("Scheduler: a destination at its window leaves the slots to others", () => {
  const s = scheduler();
  const slow = s.get("slow.test");
  for (let i = 0; i < 10; i++) slow.add(job("slow.test"));
  const started = [];
  for (let p = s.pick(0); p; p = s.pick(0)) started.push(p.dest.domain);
  assert.deepEqual(started, ["slow.test", "slow.test"], "only its initial window");
  // New mail for a healthy destination starts at once, whatever waits elsewhere.
  s.get("fast.test").add(job("fast.test"));
  assert.equal(s.pick(0)?.dest.domain, "fast.test");
  assert.equal(s.pick(0), null);
});

Deno.test("Scheduler: destinations take turns, one job per round", () => {
  const s = scheduler({ initialConcurrency: 20 });
  for (const d of ["a.test", "b.test", "c.test"]) {
    for (let i = 0; i < 3; i++) s.get(d).add(job(d));
  }
  const order = [];
  for (let p = s.pick(0); p; p = s.pick(0)) order.push(p.dest.domain[0]);
  assert.equal(order.join(""), "abcabcabc");
});

Deno.test("Scheduler: the global limit holds over all destinations", () => {
  const s = scheduler({ maxActive: 3, initialConcurrency: 20 });
  for (const d of ["a.test", "b.test"]) for (let i = 0; i < 5; i++) s.get(d).add(job(d));
  const picks = [s.pick(0), s.pick(0), s.pick(0)];
  assert.ok(picks.every(Boolean));
  assert.equal(s.pick(0), null);
  const p = picks[0]!;
  s.finished(p.dest, p.job, p.probe);
  assert.ok(s.pick(0));
});

Deno.test("Scheduler: slow start grows on answers and shrinks on failures", () => {
  const s = scheduler({ maxConcurrency: 4 });
  const d = s.get("b.test");
  for (let i = 0; i < 50; i++) d.add(job("b.test"));
  const running = () => {
    const out = [];
    for (let p = s.pick(0); p; p = s.pick(0)) out.push(p);
    return out;
  };
  let batch = running();
  assert.equal(batch.length, 2);
  for (const p of batch) {
    s.finished(p.dest, p.job, p.probe);
    d.answered(0);
  }
  assert.equal(d.window.limit, 4);
  batch = running();
  assert.equal(batch.length, 4);
  for (const p of batch) s.finished(p.dest, p.job, p.probe);
  assert.equal(d.unreachable(1, "refused", false), "shrunk");
  assert.equal(d.window.limit, 2);
  assert.equal(running().length, 2);
});

Deno.test("Scheduler: a dead peer backs off, probes one at a time, and opens on an answer", () => {
  const s = scheduler({ initialConcurrency: 1 });
  const d = s.get("dead.test");
  for (let i = 0; i < 5; i++) d.add(job("dead.test", false));
  let p = s.pick(0)!;
  s.finished(p.dest, p.job, p.probe);
  assert.equal(d.unreachable(0, "timed out", p.probe), "backoff");
  assert.equal(d.state, "backoff");
  assert.equal(d.retryAt, 1000);
  assert.equal(s.nextWake(), 1000);
  assert.equal(s.pick(500), null, "nothing before the backoff ends");
  p = s.pick(1000)!;
  assert.ok(p.probe);
  assert.equal(s.pick(1000), null, "one probe at a time");
  // While the probe runs, the backoff's end (now past) is no reason to wake: a timer armed for
  // it would fire at once, again and again, until the probe ends.
  assert.equal(s.nextWake(), null);
  s.finished(p.dest, p.job, p.probe);
  d.unreachable(1000, "timed out", true);
  assert.equal(d.retryAt, 1000 + 2000, "the wait doubles");
  // Fresh mail may probe before the wait is over.
  d.add(job("dead.test", true));
  p = s.pick(1500)!;
  assert.ok(p.job.fresh && p.probe);
  s.finished(p.dest, p.job, p.probe);
  assert.equal(d.answered(1600), true, "it was down");
  assert.equal(d.state, "open");
  assert.equal(d.window.limit, 2, "restarts small");
  assert.equal(d.down, false);
});

Deno.test("Scheduler: a late failure of an older delivery does not lengthen the backoff", () => {
  const s = scheduler({ initialConcurrency: 1 });
  const d = s.get("b.test");
  d.add(job("b.test"));
  d.unreachable(0, "x", false);
  assert.equal(d.state, "backoff");
  const retryAt = d.retryAt;
  d.unreachable(10, "y", false);
  assert.equal(d.retryAt, retryAt);
  assert.equal(d.failures, 1);
});

Deno.test("Scheduler: waking a peer that was down opens it; waking a healthy one does nothing", () => {
  const s = scheduler({ initialConcurrency: 1 });
  const d = s.get("b.test");
  assert.equal(d.wake(0), false);
  d.unreachable(5, "refused", false);
  assert.equal(d.wake(10), true);
  assert.equal(d.state, "open");
  assert.equal(d.down, false);
  assert.equal(d.wake(20), false, "only once per outage");
});

Deno.test("Scheduler: after a restart the first sign of life releases waiting mail once", () => {
  const s = scheduler();
  const d = s.get("b.test");
  d.nextDueAt = 5000;
  assert.equal(d.wake(10), true);
  d.nextDueAt = 6000;
  assert.equal(d.wake(20), false, "known since: not again");
});

Deno.test("Scheduler: a job is never loaded twice and idle destinations are forgotten", () => {
  const s = scheduler();
  const d = s.get("b.test");
  const j = job("b.test");
  d.add(j);
  d.add(j);
  assert.equal(d.ready.length, 1);
  const p = s.pick(0)!;
  d.add(j);
  assert.equal(d.ready.length, 0, "in flight: still known");
  s.finished(p.dest, p.job, p.probe);
  d.answered(1);
  s.get("c.test");
  s.sweep();
  assert.deepEqual([...s.destinations.keys()], []);
});

Deno.test("Scheduler: memory per destination is bounded", () => {
  const s = scheduler({ readyMax: 3 });
  const d = s.get("b.test");
  const added = [1, 2, 3, 4].map(() => d.add(job("b.test")));
  assert.deepEqual(added, [true, true, true, false]);
  assert.ok(d.add(job("b.test"), true), "a job put back always fits");
});
