import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import { settingJson } from "./routes/settings.ts";
import { adminServices, client } from "./testdata/services.ts";
import { generateSelfSigned } from "../net/mod.ts";
import { bytesBody } from "../store/message_input.ts";

Deno.test("GET /status reports accounts, connections, IDLE, queue and message rates", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  await t.accounts.create("abc1@example.org", "secret-pass-1");
  t.metrics.imapConnections.set(3, { listener: "imaps" });
  t.metrics.smtpConnections.set(1, { listener: "submissions" });
  t.metrics.imapIdleSessions.set(2);
  t.metrics.messagesReceived.inc({ via: "submission" }, 4);
  t.metrics.deliveries.inc({ target: "local", outcome: "delivered" }, 3);
  t.metrics.deliveries.inc({ target: "remote", outcome: "deferred" });
  await t.store.enqueue({
    sender: "abc1@example.org",
    body: bytesBody(new Uint8Array(10)),
    recipients: ["x@remote.example"],
    now: t.clock.now,
  });
  const s = await (await call("GET", "/status")).json();
  assert.equal(s.version, "0.1.0-test");
  assert.equal(s.uptime_seconds, 3723);
  assert.equal(s.accounts, 1);
  assert.deepEqual(s.connections, { submissions: 1, imaps: 3 });
  assert.equal(s.idle_sessions, 2);
  assert.equal(s.queue_length, 1);
  assert.deepEqual(s.messages_per_minute, { in: 4, out: 3 });
  assert.equal(s.history.length, 30);
  assert.deepEqual(s.history.at(-1), {
    minute: Math.floor(t.clock.now / 60_000) * 60_000,
    in: 4,
    out: 3,
  });
});

Deno.test("blocklist: add, refuse duplicates and bad entries, list, remove by path or body", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  let res = await call("POST", "/blocklist", { entry: "Spammer@Example.org", reason: "spam" });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), {
    entry: "spammer@example.org",
    reason: "spam",
    created_at: t.clock.now,
  });
  assert.equal(await t.store.isBlocked("spammer@example.org"), true);
  assert.equal((await call("POST", "/blocklist", { entry: "bad.example" })).status, 201);
  res = await call("POST", "/blocklist", { entry: "@bad.example" });
  assert.equal(res.status, 409);
  await res.body?.cancel();
  for (const entry of ["not an address", "a@@b", ""]) {
    res = await call("POST", "/blocklist", { entry });
    assert.equal(res.status, 400, entry);
    await res.body?.cancel();
  }
  const items = (await (await call("GET", "/blocklist")).json()).items;
  assert.deepEqual(items.map((b: { entry: string }) => b.entry), [
    "@bad.example",
    "spammer@example.org",
  ]);
  assert.equal(
    (await call("DELETE", `/blocklist/${encodeURIComponent("@bad.example")}`)).status,
    200,
  );
  res = await call("DELETE", "/blocklist", { entry: "spammer@example.org" });
  assert.deepEqual(await res.json(), { deleted: "spammer@example.org" });
  res = await call("DELETE", "/blocklist/spammer@example.org");
  assert.equal(res.status, 404);
  await res.body?.cancel();
  assert.deepEqual(await t.store.listBlocked(), []);
});

Deno.test("blocklist: one entry added by concurrent requests is one 201 (its reason kept), the others 409", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  const answers = await Promise.all(
    ["first", "second", "third"].map((reason) =>
      call("POST", "/blocklist", { entry: "@raced.example", reason })
    ),
  );
  assert.deepEqual(answers.map((r) => r.status).sort(), [201, 409, 409]);
  const created = await answers.find((r) => r.status === 201)!.json();
  for (const r of answers.filter((r) => r.status === 409)) await r.body?.cancel();
  assert.deepEqual(await t.store.listBlocked(), [
    { entry: "@raced.example", reason: created.reason, createdAt: created.created_at },
  ]);
});

Deno.test("federation: policy and per-domain stats; PUT validates before writing", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  await t.store.recordFederation("peer.example", "sent", t.clock.now);
  await t.store.recordFederation("peer.example", "failure", t.clock.now, "connection refused");
  let f = await (await call("GET", "/federation")).json();
  assert.equal(f.mode, "blocklist");
  assert.deepEqual(f.allowlist, []);
  assert.deepEqual(f.domains, [{
    domain: "peer.example",
    sent: 1,
    received: 0,
    failures: 1,
    last_error: "connection refused",
    last_at: t.clock.now,
  }]);
  let res = await call("PUT", "/federation", {
    mode: "allowlist",
    allowlist: ["Peer.example", "other.example"],
  });
  assert.deepEqual(await res.json(), {
    mode: "allowlist",
    allowlist: ["peer.example", "other.example"],
  });
  res = await call("PUT", "/federation", { mode: "nobody", allowlist: ["x.example"] });
  assert.equal(res.status, 400);
  await res.body?.cancel();
  res = await call("PUT", "/federation", { allowlist: ["bad domain!"] });
  assert.equal(res.status, 400);
  await res.body?.cancel();
  f = await (await call("GET", "/federation")).json();
  assert.deepEqual([f.mode, f.allowlist], ["allowlist", ["peer.example", "other.example"]]);
});

Deno.test("queue: list, show per-recipient status, retry, delete, 404 and 400", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  const id = await t.store.enqueue({
    sender: "a@example.org",
    body: bytesBody(new TextEncoder().encode("hello")),
    recipients: ["b@remote.example", "c@other.example"],
    now: t.clock.now,
  });
  const [first] = (await t.store.getQueueEntry(id))!.recipients;
  await t.store.updateRecipient(first.id, {
    status: "deferred",
    attempts: 1,
    nextAttemptAt: t.clock.now + 600_000,
    lastError: "451 try later",
    now: t.clock.now,
  });
  const list = await (await call("GET", "/queue")).json();
  assert.equal(list.total, 1);
  assert.equal(list.items[0].id, id);
  const entry = await (await call("GET", `/queue/${id}`)).json();
  assert.equal(entry.size, 5);
  assert.deepEqual(
    entry.recipients.map((r: { recipient: string; status: string }) => [r.recipient, r.status]),
    [
      ["b@remote.example", "deferred"],
      ["c@other.example", "queued"],
    ],
  );
  assert.equal(entry.recipients[0].last_error, "451 try later");

  t.clock.now += 1000;
  assert.deepEqual(await (await call("POST", `/queue/${id}/retry`)).json(), { retried: id });
  const due = await t.store.dueRecipients(t.clock.now, 10);
  assert.equal(due.length, 2, "retry makes the deferred recipient due now");

  assert.deepEqual(await (await call("DELETE", `/queue/${id}`)).json(), { deleted: id });
  for (
    const [method, path, status] of [
      ["GET", `/queue/${id}`, 404],
      ["POST", `/queue/${id}/retry`, 404],
      ["DELETE", `/queue/${id}`, 404],
      ["GET", "/queue/abc", 400],
      ["GET", "/queue/0", 400],
      ["GET", "/queue?status=lost", 400],
    ] as const
  ) {
    const res = await call(method, path);
    assert.equal(res.status, status, `${method} ${path}`);
    assert.equal(typeof (await res.json()).error, "string");
  }
});

Deno.test("GET /push reports the setting, pending jobs and counters", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  await t.store.enqueuePush({ accountId: 1, token: "tok", now: t.clock.now });
  t.metrics.pushSent.inc(undefined, 5);
  t.metrics.pushFailed.inc();
  await t.settings.set("push_enabled", "false");
  assert.deepEqual(await (await call("GET", "/push")).json(), {
    enabled: false,
    pending_jobs: 1,
    sent: 5,
    failed: 1,
  });
});

Deno.test("settings: typed list, change, reset, unknown key 404, invalid value 400", async () => {
  using t = await adminServices();
  const call = client(createAdminApp(t.deps));
  const items = (await (await call("GET", "/settings")).json()).items;
  const reg = items.find((s: { key: string }) => s.key === "registration");
  assert.deepEqual(reg.values, ["open", "closed", "token"]);
  assert.equal(reg.kind, "enum");
  let res = await call("PUT", "/settings/turn_enabled", { value: false });
  assert.equal((await res.json()).value, "false");
  assert.equal(t.settings.get("turn_enabled"), "false");
  res = await call("PUT", "/settings/turn_enabled", { value: null });
  assert.equal((await res.json()).value, "true");
  res = await call("PUT", "/settings/no_such_thing", { value: "1" });
  assert.equal(res.status, 404);
  await res.body?.cancel();
  res = await call("PUT", "/settings/federation_mode", { value: "everyone" });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /expected one of blocklist, allowlist/);
  res = await call("PUT", "/settings/federation_mode", {});
  assert.equal(res.status, 400);
  await res.body?.cancel();
});

Deno.test("settingJson() never returns secret values", () => {
  const base = { value: "hunter2", default: "", doc: "d", kind: "string" };
  assert.deepEqual(settingJson({ key: "turn_secret", ...base }), {
    key: "turn_secret",
    value: null,
    default: null,
    doc: "d",
    kind: "string",
    secret: true,
  });
  assert.equal(settingJson({ key: "x", ...base, secret: true }).value, null);
  assert.equal(settingJson({ key: "admin_contact", ...base }).value, "hunter2");
});

Deno.test("GET /certificates describes the certificates in use", async () => {
  const tls = await generateSelfSigned(["chat.example.org", "192.0.2.7"], 90);
  using t = await adminServices({
    certificates: () => [{ name: "https", certPem: tls.certPem }, { name: "bad", certPem: "x" }],
    now: Date.now,
  });
  const items = (await (await client(createAdminApp(t.deps))("GET", "/certificates")).json()).items;
  assert.equal(items[0].name, "https");
  assert.deepEqual(items[0].names, ["chat.example.org", "192.0.2.7"]);
  assert.equal(items[0].self_signed, true);
  assert.ok(items[0].days_left >= 88 && items[0].days_left <= 90, String(items[0].days_left));
  assert.deepEqual(items[1], { name: "bad", error: "cannot parse certificate" });
});
