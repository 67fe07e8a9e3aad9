// The push service against a notification server written here that records every POST and answers
// what the test says, with a real (in-memory) SQLite store and a clock the test moves.

import assert from "node:assert/strict";
import { bytesBody } from "../store/message_input.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { PushService, retryDelaySeconds, TOKEN_LIFETIME_MS } from "./service.ts";

const T0 = Date.UTC(2026, 10, 23, 9);

async function setup() {
  const posts: { body: string; type: string | null }[] = [];
  let status = 200;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    posts.push({ body: await req.text(), type: req.headers.get("content-type") });
    return new Response(null, { status });
  });
  const store = openSqliteStore(":memory:");
  let now = T0;
  let url = `http://127.0.0.1:${server.addr.port}/notify`;
  let enabled = true;
  const results: boolean[] = [];
  const push = new PushService({
    store,
    url: () => url,
    enabled: () => enabled,
    now: () => now,
    onResult: (ok) => results.push(ok),
  });
  const { account } = await store.createAccount({
    address: "bob@example.org",
    passwordHash: "x",
    now,
  });
  return {
    store,
    push,
    posts,
    results,
    id: account.id,
    setStatus: (s: number) => (status = s),
    advance: (ms: number) => (now += ms),
    now: () => now,
    url: () => url,
    setUrl: (u: string) => (url = u),
    disable: () => (enabled = false),
    async [Symbol.asyncDispose]() {
      await push.stop();
      await server.shutdown();
      store.close();
    },
  };
}

Deno.test("retry delays: at once, then 8, 64, 512 and 4096 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(retryDelaySeconds), [0, 8, 64, 512, 4096]);
});

Deno.test("one POST per live token, the token as the body; 200 ends the job", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.store.upsertPushToken(t.id, "token-2", t.now());
  // A token last set more than 90 days ago is not used.
  await t.store.upsertPushToken(t.id, "stale", t.now() - TOKEN_LIFETIME_MS - 1);
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 2);
  await t.push.runOnce();
  assert.deepEqual(t.posts.map((p) => p.body).toSorted(), ["token-1", "token-2"]);
  assert.deepEqual(t.results, [true, true]);
  assert.equal(await t.store.countPushJobs(), 0);
  // The next message queues them again.
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 2);
});

Deno.test("notify after a delivery: no token row, no read; with tokens, one job each", async () => {
  await using t = await setup();
  let reads = 0;
  const counted = new Proxy(t.store, {
    get(target, name, receiver) {
      if (name === "listPushTokens") reads++;
      return Reflect.get(target, name, receiver);
    },
  });
  const push = new PushService({
    store: counted,
    url: () => "http://127.0.0.1:9/",
    enabled: () => true,
    now: t.now,
  });
  const deliver = async () => {
    const [o] = await t.store.deliver({
      body: bytesBody(new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n")),
      internalDate: t.now(),
      targets: [{ address: "bob@example.org", mailboxName: "INBOX" }],
      defaultQuotaBytes: 1_000_000,
    });
    assert.ok(o.ok);
    return o;
  };
  const bare = await deliver();
  assert.equal(bare.hasPushTokens, false);
  await push.notify(t.id, bare);
  assert.equal(reads, 0);
  assert.equal(await t.store.countPushJobs(), 0);
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.store.upsertPushToken(t.id, "token-2", t.now());
  const withTokens = await deliver();
  assert.equal(withTokens.hasPushTokens, true);
  await push.notify(t.id, withTokens);
  assert.equal(reads, 1);
  assert.equal(await t.store.countPushJobs(), 2);
  // A stale token still has its row: read, but nothing is queued for it.
  await t.store.removePushTokens(t.id);
  await t.store.upsertPushToken(t.id, "stale", t.now() - TOKEN_LIFETIME_MS - 1);
  const stale = await deliver();
  assert.equal(stale.hasPushTokens, true);
  await push.notify(t.id, stale);
  assert.equal(reads, 2);
  assert.equal(await t.store.countPushJobs(), 2);
});

Deno.test("a token with a job waiting is not queued twice: one wake-up covers many messages", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  for (let i = 0; i < 5; i++) await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 1);
  await t.push.runOnce();
  assert.equal(t.posts.length, 1);
});

Deno.test("a job the store failed to queue does not keep the token from the next message", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  const enqueue = t.store.enqueuePush;
  t.store.enqueuePush = () => Promise.reject(new Error("database or disk is full"));
  await assert.rejects(t.push.notify(t.id), /disk is full/);
  t.store.enqueuePush = enqueue;
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 1);
  await t.push.runOnce();
  assert.deepEqual(t.posts.map((p) => p.body), ["token-1"]);
});

Deno.test("instances on one store: a job another instance sent does not keep the token from the next message", async () => {
  await using t = await setup();
  const other = new PushService({
    store: t.store,
    url: () => t.url(),
    enabled: () => true,
    now: () => t.now(),
  });
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.push.notify(t.id); // a message stored here ...
  await other.runOnce(); // ... whose job the other instance claimed and sent
  assert.equal(t.posts.length, 1);
  await t.push.notify(t.id); // the next message stored here
  assert.equal(await t.store.countPushJobs(), 1);
  await t.push.runOnce();
  assert.deepEqual(t.posts.map((p) => p.body), ["token-1", "token-1"]);
});

Deno.test("410 Gone forgets the token", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "gone", t.now());
  await t.store.upsertPushToken(t.id, "kept", t.now());
  t.setStatus(410);
  await t.push.notify(t.id);
  await t.push.runOnce();
  assert.deepEqual(await t.store.listPushTokens(t.id, 0), []);
  assert.equal(await t.store.countPushJobs(), 0);
  assert.deepEqual(t.results, [false, false]);
});

Deno.test("failures are retried on schedule and dropped after the fifth try", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "flaky", t.now());
  t.setStatus(503);
  await t.push.notify(t.id);
  await t.push.runOnce();
  assert.equal(t.posts.length, 1);
  let sent = 1;
  for (const wait of [8, 64, 512, 4096]) {
    t.advance(wait * 1000 - 1);
    await t.push.runOnce();
    assert.equal(t.posts.length, sent, `not before ${wait} s`);
    t.advance(1);
    await t.push.runOnce();
    assert.equal(t.posts.length, ++sent, `after ${wait} s`);
  }
  assert.equal(t.posts.length, 5);
  assert.equal(await t.store.countPushJobs(), 0, "dropped after five tries");
  assert.deepEqual(t.results, [false, false, false, false, false]);
  // Dropped, not forgotten: the token stays, and the next message tries again.
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 1);
});

Deno.test("an unreachable service counts as a failure and is retried", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  // A port nothing listens on: the server of another test run was here, and is gone.
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.setUrl(`http://127.0.0.1:${(gone.addr as Deno.NetAddr).port}/notify`);
  gone.close();
  await t.push.notify(t.id);
  await t.push.runOnce();
  assert.deepEqual(t.results, [false]);
  const [job] = await t.store.duePushJobs(t.now() + 8000, 10);
  assert.equal(job.attempt, 1);
  assert.equal(job.nextAt, t.now() + 8000);
});

Deno.test("nothing is queued when push is off or has no URL", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  t.setUrl("");
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 0);
  t.setUrl(`http://127.0.0.1:1/notify`);
  t.disable();
  await t.push.notify(t.id);
  assert.equal(await t.store.countPushJobs(), 0);
});

Deno.test("jobs queued while stopped are sent by start()", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.push.notify(t.id);
  assert.equal(t.posts.length, 0, "not started: the job waits in the store");
  t.push.start(60_000);
  for (const until = Date.now() + 10_000; t.posts.length === 0 && Date.now() < until;) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(t.posts.map((p) => p.body), ["token-1"]);
});

Deno.test("a store error for one token does not keep the other tokens from being queued", async () => {
  await using t = await setup();
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.store.upsertPushToken(t.id, "token-2", t.now());
  await t.store.upsertPushToken(t.id, "token-3", t.now());
  const enqueue = t.store.enqueuePush.bind(t.store);
  t.store.enqueuePush = (job) =>
    job.token === "token-2" ? Promise.reject(new Error("database or disk is full")) : enqueue(job);
  // The caller still learns of the failure ...
  await assert.rejects(t.push.notify(t.id), /disk is full/);
  // ... and every other token got its job, whichever order the store lists them in.
  assert.equal(await t.store.countPushJobs(), 2);
  await t.push.runOnce();
  assert.deepEqual(t.posts.map((p) => p.body).toSorted(), ["token-1", "token-3"]);
});

Deno.test("a redirect from the push service is not followed: a failure, retried later", async () => {
  const requests: { method: string; path: string }[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    requests.push({ method: req.method, path });
    if (path === "/notify") {
      return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
    }
    return new Response(null, { status: 200 });
  });
  await using t = await setup();
  t.setUrl(`http://127.0.0.1:${server.addr.port}/notify`);
  await t.store.upsertPushToken(t.id, "token-1", t.now());
  await t.push.notify(t.id);
  await t.push.runOnce();
  // One POST to the configured URL; nothing was sent to where the redirect pointed.
  assert.deepEqual(requests, [{ method: "POST", path: "/notify" }]);
  assert.deepEqual(t.results, [false]);
  const [job] = await t.store.duePushJobs(t.now() + 8000, 10);
  assert.equal(job.attempt, 1, "retried as other failures are");
});
