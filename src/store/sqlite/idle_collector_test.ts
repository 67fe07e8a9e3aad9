import assert from "node:assert/strict";
import { idleCollector } from "./idle_collector.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("idle collector: one collection after the work stops, none while it goes on", async () => {
  const runs: string[] = [];
  const c = idleCollector(
    40,
    (o) => runs.push(`${o.type} ${"flavor" in o ? o.flavor : o.execution}`),
  );
  for (let i = 0; i < 6; i++) {
    c.touch();
    await sleep(15);
  }
  assert.deepEqual(runs, [], "work every 15 ms keeps it waiting");
  await sleep(80);
  assert.deepEqual(runs, ["major last-resort"]);
  await sleep(80);
  assert.equal(runs.length, 1, "no new work, no new collection");
  c.touch();
  await sleep(80);
  assert.equal(runs.length, 2, "new work owes one more");
  c.stop();
});

Deno.test("idle collector: stop cancels the pending one and ignores later work", async () => {
  let runs = 0;
  const c = idleCollector(20, () => runs++);
  c.touch();
  c.stop();
  c.touch();
  await sleep(60);
  assert.equal(runs, 0);
});

Deno.test("idle collector: without an exposed gc nothing is scheduled", () => {
  const c = idleCollector(10, null);
  // A timer left behind would fail the test's op sanitizer.
  c.touch();
  c.stop();
});
