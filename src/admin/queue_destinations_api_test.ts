import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import { adminServices, client } from "./testdata/services.ts";
import type { AdminDestination, AdminOutbound } from "./backend.ts";
import { bytesBody } from "../store/message_input.ts";

Deno.test("GET /queue/destinations: per destination from the store without a worker", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  await t.store.enqueue({
    sender: "a@example.org",
    body: bytesBody(new TextEncoder().encode("x")),
    recipients: ["b@remote.example", "c@remote.example", "d@other.example"],
    now: t.clock.now,
  });
  const body = await (await call("GET", "/queue/destinations")).json();
  assert.deepEqual(
    body.destinations.map((d: { domain: string; pending: number }) => [d.domain, d.pending]),
    [
      ["remote.example", 2],
      ["other.example", 1],
    ],
  );
  assert.equal(body.destinations[0].oldest_at, t.clock.now);
  assert.equal(body.destinations[0].state, "open");
  const bad = await call("GET", "/queue/destinations?limit=0");
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
});

Deno.test("GET /queue/destinations and retry go through the outbound worker when it runs", async () => {
  const retried: number[] = [];
  const dest: AdminDestination = {
    domain: "down.example",
    pending: 3,
    deferred: 3,
    oldestAt: 10,
    nextAttemptAt: 20,
    lastError: "Connection to 192.0.2.1:25 timed out after 15 s",
    state: "backoff",
    concurrency: 1,
    active: 0,
    retryAt: 30,
  };
  const outbound: AdminOutbound = {
    destinations: () => Promise.resolve([dest]),
    retryEntry: (id) => Promise.resolve(retried.push(id) > 0 && id === 7),
  };
  using t = await adminServices({ outbound });
  const call = client(createAdminApp(t.deps));
  const body = await (await call("GET", "/queue/destinations")).json();
  assert.deepEqual(body.destinations, [{
    domain: "down.example",
    pending: 3,
    deferred: 3,
    oldest_at: 10,
    next_attempt_at: 20,
    last_error: "Connection to 192.0.2.1:25 timed out after 15 s",
    state: "backoff",
    concurrency: 1,
    active: 0,
    retry_at: 30,
  }]);
  assert.deepEqual(await (await call("POST", "/queue/7/retry")).json(), { retried: 7 });
  const missing = await call("POST", "/queue/8/retry");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  assert.deepEqual(retried, [7, 8]);
});
