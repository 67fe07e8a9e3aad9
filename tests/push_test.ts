// Push notifications against a local notification service that records what it receives and
// answers 200, 410 or 500: tokens come from IMAP SETMETADATA, new mail triggers one POST per
// token, 410 forgets the token, failures are retried on schedule, jobs survive a restart.

import assert from "node:assert/strict";
import { submitEncrypted } from "./support/submit.ts";
import { createAccount, fakeDns, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";
import { loadConfig } from "../src/config/mod.ts";
import { startRelay } from "../src/app/relay.ts";
import { silentLogger } from "../src/log/mod.ts";

interface Recorder {
  url: string;
  bodies: string[];
  status: number;
  close(): Promise<void>;
}

function notificationService(): Recorder {
  const rec: Recorder = { url: "", bodies: [], status: 200, close: async () => {} };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    rec.bodies.push(await req.text());
    return new Response(null, { status: rec.status });
  });
  rec.url = `http://127.0.0.1:${server.addr.port}/notify`;
  rec.close = () => server.shutdown();
  return rec;
}

async function setToken(t: TestRelay, user: { address: string; password: string }, token: string) {
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
  await client.login(user.address, user.password);
  const r = await client.cmd(`SETMETADATA INBOX (/private/devicetoken "${token}")`);
  assert.ok(r.ok, r.status);
  const got = await client.cmd("GETMETADATA INBOX /private/devicetoken");
  client.close();
  return got.untagged[0];
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("push: one POST per token on new mail, none for the sender's own copy", async () => {
  const svc = notificationService();
  try {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const c = await createAccount(t, "carol0001");
      await setToken(t, b, "token-b1");
      assert.equal(
        metadataValue(await setToken(t, b, "token-b2"), "/private/devicetoken"),
        "token-b1 token-b2",
      );
      await setToken(t, a, "token-a");
      const store = t.relay.services.store;
      const aliceId = (await store.getAccount(a.address))!.id;
      const bobId = (await store.getAccount(b.address))!.id;
      const carolId = (await store.getAccount(c.address))!.id;
      // Which accounts the relay asks the push service to notify (observed, not replaced).
      const push = t.relay.push;
      const notify = push.notify.bind(push);
      const notified: number[] = [];
      const seen = new Map<number, boolean | undefined>();
      push.notify = (id, known) => {
        notified.push(id);
        seen.set(id, known?.hasPushTokens);
        return notify(id, known);
      };
      // This subscriber comes after the relay's own (handlers run in order, synchronously):
      // once it saw a delivery, the relay has decided about pushing for it.
      const delivered: number[] = [];
      const off = t.relay.services.bus.subscribeAll((e) => {
        if (e.type === "mail.delivered") delivered.push(e.accountId);
      });
      try {
        const started = performance.now();
        await submitEncrypted(t, a, [b.address, a.address, c.address]);
        await until(
          "three copies",
          () => [aliceId, bobId, carolId].every((id) => delivered.includes(id)),
        );
        assert.deepEqual(notified, [bobId, carolId], "alice's own copy asks for no push");
        // The delivery saw bob's tokens and carol's lack of any: carol costs no token read.
        assert.deepEqual([seen.get(bobId), seen.get(carolId)], [true, false]);
        await until("both of bob's tokens", () => svc.bodies.length >= 2);
        const ms = performance.now() - started;
        await until("the jobs to finish", async () => (await store.countPushJobs()) === 0);
        assert.deepEqual(svc.bodies.sort(), ["token-b1", "token-b2"]);
        console.log(`push: notification service called ${Math.round(ms)} ms after submission`);
      } finally {
        off();
      }
    }, { overrides: { push_url: svc.url } });
  } finally {
    await svc.close();
  }
});

Deno.test("push: the notification host is found through the relay's resolver only", async () => {
  const svc = notificationService();
  const port = new URL(svc.url).port;
  try {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      await setToken(t, b, "token-b");
      await submitEncrypted(t, a, [b.address]);
      await until("the notification", () => svc.bodies.length === 1);
      assert.deepEqual(svc.bodies, ["token-b"]);
    }, {
      // No system resolver knows push.test; the relay's (injected here, dns_server in
      // production) does.
      overrides: { push_url: `http://push.test:${port}/notify` },
      relay: { dns: fakeDns({ addresses: { "push.test": ["127.0.0.1"] } }) },
    });
  } finally {
    await svc.close();
  }
});

Deno.test("push: 410 removes the token; failures are retried after 8 s, then succeed", async () => {
  const svc = notificationService();
  let clock = Date.UTC(2026, 10, 23, 9, 0, 0);
  try {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const account = (await t.relay.services.store.getAccount(b.address))!;
      await setToken(t, b, "gone-token");
      svc.status = 410;
      await submitEncrypted(t, a, [b.address]);
      await until("the job", async () => (await t.relay.services.store.countPushJobs()) === 1);
      await t.relay.push.runOnce();
      assert.deepEqual(svc.bodies, ["gone-token"]);
      assert.deepEqual(await t.relay.services.store.listPushTokens(account.id, 0), []);

      await setToken(t, b, "flaky-token");
      svc.status = 500;
      svc.bodies.length = 0;
      await submitEncrypted(t, a, [b.address]);
      await until("the job", async () => (await t.relay.services.store.countPushJobs()) === 1);
      await t.relay.push.runOnce();
      assert.equal(svc.bodies.length, 1);
      await t.relay.push.runOnce();
      assert.equal(svc.bodies.length, 1, "not before the retry time");
      clock += 8_000;
      svc.status = 200;
      await t.relay.push.runOnce();
      assert.equal(svc.bodies.length, 2);
      assert.equal(await t.relay.services.store.countPushJobs(), 0);
    }, { overrides: { push_url: svc.url }, relay: { now: () => clock, manualQueue: true } });
  } finally {
    await svc.close();
  }
});

Deno.test("push: a token removed after its job was queued (NIL, or dropped at the limit) gets no POST", async () => {
  const svc = notificationService();
  try {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const store = t.relay.services.store;
      const account = (await store.getAccount(b.address))!;
      const { client } = await ImapTestClient.connect(t.addr("imaps"), {
        tls: true,
        caPem: t.caPem,
      });
      try {
        assert.ok((await client.login(b.address, b.password)).ok);
        // The app signs out of push (NIL) after the mail came in, before the job is sent.
        assert.ok((await client.cmd(`SETMETADATA INBOX (/private/devicetoken "signed-out")`)).ok);
        await submitEncrypted(t, a, [b.address]);
        await until("the job", async () => (await store.countPushJobs()) === 1);
        assert.ok((await client.cmd(`SETMETADATA INBOX (/private/devicetoken NIL)`)).ok);
        await t.relay.push.runOnce();
        assert.equal(svc.bodies.length, 0, svc.bodies.join(" "));
        assert.equal(await store.countPushJobs(), 0, "the job is dropped, not retried");

        // At the 20-token limit: the mail queues a job per token; a new token then drops old-0.
        const now = Date.now();
        for (let i = 0; i < 20; i++) {
          await store.upsertPushToken(account.id, `old-${i}`, now - (20 - i) * 1000);
        }
        await submitEncrypted(t, a, [b.address]);
        await until("the jobs", async () => (await store.countPushJobs()) === 20);
        assert.ok((await client.cmd(`SETMETADATA INBOX (/private/devicetoken "reinstalled")`)).ok);
        await t.relay.push.runOnce();
        assert.equal(svc.bodies.length, 19, svc.bodies.join(" "));
        assert.ok(!svc.bodies.includes("old-0") && svc.bodies.includes("old-1"));
        assert.equal(await store.countPushJobs(), 0);
      } finally {
        client.close();
      }
    }, { overrides: { push_url: svc.url }, relay: { manualQueue: true } });
  } finally {
    await svc.close();
  }
});

Deno.test("push: a pending job is sent after a restart", async () => {
  const svc = notificationService();
  const dir = await Deno.makeTempDir({ prefix: "tern-push-" });
  const config = loadConfig({
    dev: true,
    overrides: {
      data_dir: `${dir}/data`,
      push_url: svc.url,
      "listen.smtp": "",
      "listen.submission": "",
      "listen.submissions": "",
      "listen.imap": "",
      "listen.imaps": "",
      "listen.http": "",
      "listen.https": "",
      "listen.metrics": "",
    },
  }).config;
  try {
    const first = await startRelay(config, { log: silentLogger, manualQueue: true });
    const acc = await first.services.accounts.create("bobby0001@[127.0.0.1]", "password-123456");
    await first.services.store.upsertPushToken(acc.id, "persisted-token", Date.now());
    await first.push.notify(acc.id);
    assert.equal(await first.services.store.countPushJobs(), 1);
    await first.close();
    assert.equal(svc.bodies.length, 0);
    const second = await startRelay(config, { log: silentLogger });
    try {
      await until("the resumed notification", () => svc.bodies.length === 1);
      assert.deepEqual(svc.bodies, ["persisted-token"]);
    } finally {
      await second.close();
    }
  } finally {
    await svc.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("push: a device token with a NUL or control byte is refused, not stored cut short", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const account = (await t.relay.services.store.getAccount(b.address))!;
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    try {
      await client.login(b.address, b.password);
      for (const value of ["abc\0def", "abc\x01def", "abc\x7fdef"]) {
        const r = await client.cmd(
          `SETMETADATA INBOX (/private/devicetoken {${value.length}+}\r\n${value})`,
        );
        assert.ok(!r.ok && r.status.startsWith("NO"), `${JSON.stringify(value)}: ${r.status}`);
      }
      assert.deepEqual(await t.relay.services.store.listPushTokens(account.id, 0), []);
      // The session goes on: a plain token is still accepted.
      const ok = await client.cmd(`SETMETADATA INBOX (/private/devicetoken "abcdef")`);
      assert.ok(ok.ok, ok.status);
    } finally {
      client.close();
    }
  });
});

Deno.test("push: a new device token at the 20-token limit is accepted and drops the oldest", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const store = t.relay.services.store;
    const account = (await store.getAccount(b.address))!;
    const now = Date.now();
    // At the limit, each token set a second after the one before: old-0 longest ago.
    for (let i = 0; i < 20; i++) {
      await store.upsertPushToken(account.id, `old-${i}`, now - (20 - i) * 1000);
    }
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    try {
      await client.login(b.address, b.password);
      // The app after a reinstall: its new token is taken and gets the pushes from now on.
      const r = await client.cmd(`SETMETADATA INBOX (/private/devicetoken "reinstalled")`);
      assert.ok(r.ok, r.status);
      const got = await client.cmd(`GETMETADATA INBOX /private/devicetoken`);
      assert.ok(got.ok, got.status);
      const value = got.untagged.join("\n");
      assert.match(value, /reinstalled/);
      assert.doesNotMatch(value, /\bold-0\b/);
      const stored = (await store.listPushTokens(account.id, 0)).map((s) => s.token);
      assert.equal(stored.length, 20, stored.join(" "));
      assert.ok(!stored.includes("old-0") && stored.includes("old-1"), stored.join(" "));
    } finally {
      client.close();
    }
  });
});

Deno.test("push: sessions racing to add tokens are all accepted; the account keeps 20 tokens", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const account = (await t.relay.services.store.getAccount(b.address))!;
    const now = Date.now();
    for (let i = 0; i < 18; i++) {
      await t.relay.services.store.upsertPushToken(account.id, `old-${i}`, now - (18 - i) * 1000);
    }
    const clients = await Promise.all(Array.from({ length: 6 }, async () => {
      const { client } = await ImapTestClient.connect(t.addr("imaps"), {
        tls: true,
        caPem: t.caPem,
      });
      await client.login(b.address, b.password);
      return client;
    }));
    try {
      const results = await Promise.all(
        clients.map((c, i) => c.cmd(`SETMETADATA INBOX (/private/devicetoken "new-${i}")`)),
      );
      for (const r of results) assert.ok(r.ok, r.status);
      const stored = (await t.relay.services.store.listPushTokens(account.id, 0))
        .map((s) => s.token);
      assert.equal(stored.length, 20, stored.join(" "));
      // Every new token is kept; the four set longest ago made room.
      for (let i = 0; i < 6; i++) assert.ok(stored.includes(`new-${i}`), stored.join(" "));
      for (let i = 0; i < 4; i++) assert.ok(!stored.includes(`old-${i}`), stored.join(" "));
    } finally {
      for (const c of clients) c.close();
    }
  });
});

/** A notification service that holds the request of `stuck` unanswered, answers others 200. */
function stuckService(stuck: string) {
  const bodies: string[] = [];
  const held: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    bodies.push(body);
    if (body === stuck) await new Promise<void>((r) => held.push(r));
    return new Response(null, { status: 200 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/notify`,
    bodies,
    async close() {
      for (const r of held) r();
      await server.shutdown();
    },
  };
}

Deno.test("push: a request the service never answers holds up neither other devices' wake-ups nor shutdown", async () => {
  const svc = stuckService("token-stuck");
  try {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const c = await createAccount(t, "carol0001");
      await setToken(t, b, "token-stuck");
      await setToken(t, c, "token-c");
      await submitEncrypted(t, a, [b.address]);
      await until("the stuck request", () => svc.bodies.includes("token-stuck"));
      const t0 = performance.now();
      await submitEncrypted(t, a, [c.address]);
      await until("carol's wake-up", () => svc.bodies.includes("token-c"), 10_000);
      const waited = performance.now() - t0;
      assert.ok(waited < 4000, `carol's wake-up waited ${Math.round(waited)} ms`);
      const t1 = performance.now();
      await t.relay.push.stop();
      const stopping = performance.now() - t1;
      assert.ok(stopping < 3000, `stopping waited ${Math.round(stopping)} ms for the request`);
    }, { overrides: { push_url: svc.url } });
  } finally {
    await svc.close();
  }
});
