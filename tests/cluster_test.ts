// Two tern instances (127.0.0.1 and 127.0.0.2) sharing one PostgreSQL database (store =
// "postgres"), as README "Growing beyond one machine" describes: accounts made through one are
// served by the other, and a message accepted on A wakes an IDLE session on B at once (the event
// buses are bridged with LISTEN/NOTIFY); kill -9 of A under a submission load loses no accepted
// message and duplicates none, B keeps serving, and the outbound attempt A was making when it died
// is made again by B, which takes over the outbound worker once A's session (and its lock) ends.

import assert from "node:assert/strict";
import { runTern } from "./support/util.ts";
import { startTern, type TernProcess } from "./support/tern_process.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { armoredPayload, encryptedMessage, pgpMime } from "./support/messages.ts";
import { postgresNeed, startPostgres } from "./support/postgres.ts";
import { requireAll, requireRoot } from "./support/tools.ts";
import { Device, secureJoin } from "./support/deltachat.ts";
import { freePorts } from "./support/ports.ts";
import { createHash } from "node:crypto";
import { PG_MIGRATIONS } from "../src/store/postgres/migrations.ts";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
/** What follows the header block: header cleanup leaves it as sent. */
const textOf = (message: string) => message.slice(message.indexOf("\r\n\r\n") + 4);

const LIMITS = "max_user_send_per_minute = 1000000\nmax_user_send_burst_size = 1000000";

/** Instance `ip` of the IP relay [127.0.0.1] on the database at `url`. */
function instance(url: string, ip: string, extra = ""): Promise<TernProcess> {
  return startTern(
    [
      `store = "postgres"`,
      `database_url = "${url}"`,
      // Its own name in its certificate; the mail domain stays the relay's.
      `hostname = "${ip}"`,
      // The other relay is on a loopback address, which outbound delivery refuses unless allowed.
      "outbound_allow_private = true",
      LIMITS,
      extra,
    ].join("\n"),
    { ip, domain: "127.0.0.1" },
  );
}

async function submit(
  relay: TernProcess,
  ip: string,
  from: { address: string; password: string },
  to: string,
  message: string,
) {
  const c = await SmtpTestClient.connect(
    { hostname: ip, port: relay.port("submissions") },
    { tls: true, caPem: relay.caPem },
  );
  try {
    await c.reply();
    await c.cmd("EHLO client.test");
    assert.equal((await c.login(from.address, from.password)).code, 235);
    return await c.sendMail(from.address, [to], message);
  } finally {
    c.close();
  }
}

Deno.test({
  name: postgresNeed.title(
    "two instances on one PostgreSQL: mail accepted on A wakes an IDLE session on B; the dashboard lists both; maintenance runs once",
  ),
  ignore: postgresNeed.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPostgres();
    const relays: TernProcess[] = [];
    try {
      const url = await pg.createDatabase("cluster");
      relays.push(await instance(url, "127.0.0.1"));
      relays.push(await instance(url, "127.0.0.2"));
      const [a, b] = relays;
      const alice = { address: "alice0001@[127.0.0.1]", password: "password-123456" };
      const bob = { address: "bobby0001@[127.0.0.1]", password: "password-123456" };
      // Made through A's configuration (the CLI on PostgreSQL), served by both.
      for (const u of [alice, bob]) {
        const r = await runTern([
          "accounts",
          "create",
          u.address,
          u.password,
          "--config",
          `${a.dir}/tern.toml`,
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const { client } = await ImapTestClient.connect(
        { hostname: "127.0.0.2", port: b.port("imaps") },
        { tls: true, caPem: b.caPem },
      );
      try {
        assert.ok((await client.login(bob.address, bob.password)).ok);
        const sel = await client.cmd("SELECT INBOX");
        assert.ok(sel.untagged.includes("* 0 EXISTS"), sel.untagged.join("\n"));
        const latencies: number[] = [];
        for (let i = 1; i <= 5; i++) {
          const tag = client.nextTag();
          await client.send(`${tag} IDLE\r\n`);
          assert.match(await client.readResponse(), /^\+ /);
          const message = await encryptedMessage(alice.address, bob.address, `hello ${i}`);
          const r = await submit(a, "127.0.0.1", alice, bob.address, message);
          assert.equal(r.code, 250, r.text);
          const accepted = performance.now();
          // The next line on B is the EXISTS (no polling: B would only look again much later).
          const line = await client.readResponse();
          latencies.push(performance.now() - accepted);
          assert.equal(line, `* ${i} EXISTS`);
          await client.send("DONE\r\n");
          const done = await client.collect(tag);
          assert.ok(done.ok, done.status);
        }
        // What B serves is what A stored.
        const f = await client.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM)])");
        assert.equal(f.untagged.filter((l) => l.includes(alice.address)).length, 5);
        // A's admin dashboard shows both instances (each announces its figures).
        const token = (await Deno.readTextFile(`${a.dataDir}/admin_token`)).trim();
        using http = Deno.createHttpClient({ caCerts: [a.caPem] });
        const res = await fetch(`https://${a.listen.https}/api/admin/status`, {
          headers: { authorization: `Bearer ${token}` },
          client: http,
        });
        assert.equal(res.status, 200);
        const status = await res.json();
        assert.deepEqual(
          status.instances.map((i: { host: string }) => i.host).sort(),
          ["127.0.0.1", "127.0.0.2"],
        );
        // Each maintenance task ran once, on one of the two instances (both started them).
        const ran = [a, b].flatMap((r) =>
          r.stderr().split("\n").filter((l) => l.includes('"maintenance task ran"'))
            .map((l) => JSON.parse(l).task as string)
        );
        assert.ok(ran.length > 0, "no maintenance task ran");
        assert.deepEqual(ran.toSorted(), [...new Set(ran)].sort(), "a task ran twice");
        latencies.sort((x, y) => x - y);
        console.log(
          `cluster: 250 on A -> EXISTS on B: median ${latencies[2].toFixed(1)} ms, max ${
            latencies[4].toFixed(1)
          } ms (5 messages, the 250 read by the client first); ${ran.length} maintenance tasks ran once each`,
        );
      } finally {
        client.close();
      }
    } finally {
      for (const r of relays) await r.stop();
      await pg.stop();
    }
  },
});

/** A TCP listener that accepts and never answers: an outbound attempt to it hangs. */
function hangingListener(hostname: string, port: number) {
  const listener = Deno.listen({ hostname, port });
  const conns: Deno.Conn[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  const loop = (async () => {
    try {
      for await (const c of listener) {
        conns.push(c);
        for (const w of waiting) if (conns.length >= w.n) w.resolve();
      }
    } catch {
      // closed
    }
  })();
  return {
    /** Resolves once `n` connections were accepted in all. */
    accepted(n: number): Promise<void> {
      if (conns.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiting.push({ n, resolve }));
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // the peer went first
        }
      }
      await loop;
    },
  };
}

const killNeed = requireAll(postgresNeed, requireRoot());

Deno.test({
  name: killNeed.title(
    "kill -9 of one instance under submissions: every 250 stored once, the other serves on and retries its outbound attempt",
  ),
  ignore: killNeed.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPostgres();
    const relays: TernProcess[] = [];
    // The other relay's address: at first something that accepts and never answers (A's attempt
    // hangs there when A dies), then a real tern relay on the standard ports.
    // A loopback address of its own (the standard ports may be taken on the common ones).
    const other = `127.${100 + Math.floor(Math.random() * 100)}.${
      Math.floor(Math.random() * 250)
    }.${2 + Math.floor(Math.random() * 250)}`;
    const hang = hangingListener(other, 443);
    let hangClosed = false;
    try {
      const url = await pg.createDatabase("cluster_kill");
      // A starts first: it holds the outbound lock and runs the outbound worker.
      // Mail A was sending when it died stays claimed by A this long, then B sends it.
      const lease = `outbound_claim_lease = "6s"`;
      const a = await instance(url, "127.0.0.1", lease);
      relays.push(a);
      const b = await instance(url, "127.0.0.2", lease);
      relays.push(b);
      const alice = { address: "alice0001@[127.0.0.1]", password: "password-123456" };
      const bob = { address: "bobby0001@[127.0.0.1]", password: "password-123456" };
      for (const u of [alice, bob]) {
        const r = await runTern([
          "accounts",
          "create",
          u.address,
          u.password,
          "--config",
          `${a.dir}/tern.toml`,
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const armored = await armoredPayload("cluster crash test");
      // Past the inline limit: stored in chunks.
      const large = await armoredPayload("x".repeat(150_000));
      const carol = `carol0001@[${other}]`;
      const outbound = pgpMime(alice.address, carol, armored);
      assert.equal((await submit(a, "127.0.0.1", alice, carol, outbound)).code, 250);
      // A's worker is attempting it.
      await hang.accepted(1);
      const connect = async () => {
        const c = await SmtpTestClient.connect(
          { hostname: "127.0.0.1", port: a.port("submissions") },
          { tls: true, caPem: a.caPem },
        );
        await c.reply();
        await c.cmd("EHLO x.test");
        await c.login(alice.address, alice.password);
        return c;
      };
      const accepted = new Map<string, string>();
      let stop = false;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        const c = await connect();
        for (let i = 0; !stop; i++) {
          const msg = pgpMime(alice.address, bob.address, (i + w) % 5 === 0 ? large : armored);
          const id = /^Message-ID: <([^>]+)>/m.exec(msg)![1];
          try {
            const r = await c.sendMail(alice.address, [bob.address], msg);
            if (r.code === 250) accepted.set(id, sha(textOf(msg)));
          } catch {
            break; // the instance is gone
          }
        }
        c.close();
      });
      const deadline = Date.now() + 60_000;
      while (accepted.size < 20 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      a.kill();
      stop = true;
      await Promise.all(workers);
      await a.stop();
      assert.ok(accepted.size >= 20, `only ${accepted.size} messages accepted in 60 s`);
      // B takes over the outbound worker (A's session and its lock are gone) and makes A's
      // attempt again once A's claim on the recipient ended: it hangs as well. Then the other relay comes up where both hung, and B
      // tries again once its backoff for the peer ends.
      await hang.accepted(2);
      await hang.close();
      hangClosed = true;
      const c = await startTern("", {
        ip: other,
        listen: { smtp: `${other}:25`, https: `${other}:443` },
      });
      relays.push(c);
      const rc = await runTern([
        "accounts",
        "create",
        carol,
        "password-123456",
        "--config",
        `${c.dir}/tern.toml`,
      ]);
      assert.equal(rc.code, 0, rc.stderr);

      // B serves every accepted message, once, whole.
      const { client } = await ImapTestClient.connect(
        { hostname: "127.0.0.2", port: b.port("imaps") },
        { tls: true, caPem: b.caPem },
      );
      try {
        assert.ok((await client.login(bob.address, bob.password)).ok);
        await client.cmd("SELECT INBOX");
        const f = await client.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
        const ids = f.untagged.map((l) => /Message-ID: <([^>]+)>/i.exec(l)?.[1]).filter(Boolean);
        const counts = new Map<string, number>();
        for (const id of ids) counts.set(id!, (counts.get(id!) ?? 0) + 1);
        for (const id of accepted.keys()) {
          assert.equal(counts.get(id), 1, `message ${id} after the crash`);
        }
        assert.ok([...counts.values()].every((n) => n === 1), "no duplicates");
        for (let seq = 1; seq <= ids.length; seq++) {
          const id = ids[seq - 1]!;
          if (!accepted.has(id)) continue;
          const t = await client.cmd(`FETCH ${seq} (BODY.PEEK[TEXT])`);
          const line = t.untagged.find((l) => l.includes("BODY[TEXT]"))!;
          const text = line.slice(line.indexOf("}\r\n") + 3, line.lastIndexOf(")"));
          assert.equal(sha(text), accepted.get(id), `body of ${id}`);
        }
        // B takes new mail.
        const r = await submit(
          b,
          "127.0.0.2",
          alice,
          bob.address,
          await encryptedMessage(alice.address, bob.address, "after"),
        );
        assert.equal(r.code, 250, r.text);
        console.log(
          `cluster crash: ${accepted.size} accepted on A before kill -9, all on B once and whole (${ids.length} stored)`,
        );
      } finally {
        client.close();
      }

      // A's outbound attempt died with it; B took over the worker and makes it.
      const started = performance.now();
      const { client: cc } = await ImapTestClient.connect(
        { hostname: other, port: c.port("imaps") },
        { tls: true, caPem: c.caPem },
      );
      try {
        assert.ok((await cc.login(carol, "password-123456")).ok);
        const sel = await cc.cmd("SELECT INBOX");
        if (sel.untagged.includes("* 0 EXISTS")) {
          // Waits for the delivery (each read gives up after 30 s).
          const tag = cc.nextTag();
          await cc.send(`${tag} IDLE\r\n`);
          assert.match(await cc.readResponse(), /^\+ /);
          let line = "";
          try {
            while (!/^\* \d+ EXISTS$/.test(line)) line = await cc.readResponse();
          } catch (err) {
            // What B's worker did, to tell a missed takeover from a slow retry.
            const said = b.stderr().split("\n").filter((l) => /outbound|deliver|defer/i.test(l));
            throw new Error(`${(err as Error).message}; B logged:\n${said.slice(-30).join("\n")}`);
          }
          await cc.send("DONE\r\n");
          assert.ok((await cc.collect(tag)).ok);
        }
        const f = await cc.cmd("FETCH 1 (BODY.PEEK[TEXT])");
        assert.ok(f.untagged.join("\n").includes(textOf(outbound).slice(0, 200)));
        console.log(
          `cluster crash: A's outbound message delivered by B ${
            Math.round((performance.now() - started) / 1000)
          } s of waiting after the checks on B (B took the lock, then waited its backoff for the peer)`,
        );
      } finally {
        cc.close();
      }
    } finally {
      if (!hangClosed) await hang.close();
      for (const r of relays) await r.stop();
      await pg.stop();
    }
  },
});

/**
 * UIDVALIDITY, and each message's UID, flags and bytes (digest) in a mailbox, as a client sees
 * them (\Recent aside: the first session took it).
 */
async function snapshot(relay: TernProcess, user: { address: string; password: string }) {
  const { client } = await ImapTestClient.connect(
    { hostname: "127.0.0.1", port: relay.port("imaps") },
    { tls: true, caPem: relay.caPem },
  );
  try {
    assert.ok((await client.login(user.address, user.password)).ok);
    const sel = await client.cmd("SELECT INBOX");
    const validity = sel.untagged.find((l) => l.includes("UIDVALIDITY"));
    const f = await client.cmd("UID FETCH 1:* (UID FLAGS BODY.PEEK[])");
    return {
      validity,
      messages: f.untagged.map((
        l,
      ) => [
        /UID (\d+)/.exec(l)?.[1],
        /FLAGS \(([^)]*)\)/.exec(l)?.[1].replace("\\Recent", "").trim(),
        sha(l.slice(l.indexOf("}\r\n"))),
      ]),
    };
  } finally {
    client.close();
  }
}

Deno.test({
  name: postgresNeed.title(
    "migrate-store: an SQLite relay copied into PostgreSQL serves the same UIDs and bytes",
  ),
  ignore: postgresNeed.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPostgres();
    const dir = await Deno.makeTempDir({ prefix: "tern-migrate-store-" });
    let relay: TernProcess | null = null;
    try {
      relay = await startTern(LIMITS, { dir });
      const config = `${dir}/tern.toml`;
      const alice = { address: "alice0001@[127.0.0.1]", password: "password-123456" };
      const bob = { address: "bobby0001@[127.0.0.1]", password: "password-123456" };
      for (const u of [alice, bob]) {
        const r = await runTern(["accounts", "create", u.address, u.password, "--config", config]);
        assert.equal(r.code, 0, r.stderr);
      }
      const large = await armoredPayload("y".repeat(200_000));
      // Two bodies in one body segment (from 32 KiB to the inline limit): copied by their offsets.
      const medium = await armoredPayload("z".repeat(60_000));
      for (let i = 0; i < 6; i++) {
        const msg = i === 3
          ? pgpMime(alice.address, bob.address, large)
          : i === 1 || i === 4
          ? pgpMime(alice.address, bob.address, medium)
          : await encryptedMessage(alice.address, bob.address, `before ${i}`);
        assert.equal((await submit(relay, "127.0.0.1", alice, bob.address, msg)).code, 250);
      }
      const before = await snapshot(relay, bob);
      assert.equal(before.messages.length, 6);
      await relay.stop();
      relay = null;

      const url = await pg.createDatabase("migrated");
      const r = await runTern(["migrate-store", "--to", url, "--config", config]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /copied \d+\/\d+ rows/);
      assert.match(
        r.stdout,
        /done: \d+ rows copied and counted, counters match, \d+ bodies identical/,
      );
      assert.ok(!r.stdout.includes("tern-test-password"), "the password is not shown");

      relay = await startTern(`store = "postgres"\ndatabase_url = "${url}"\n${LIMITS}`, { dir });
      const after = await snapshot(relay, bob);
      assert.deepEqual(after, before);
      // It carries on: the next message gets the next UID.
      const next = await encryptedMessage(alice.address, bob.address, "after");
      assert.equal((await submit(relay, "127.0.0.1", alice, bob.address, next)).code, 250);
      const later = await snapshot(relay, bob);
      assert.equal(later.messages.at(-1)![0], "7");
      // `tern migrate` on this configuration looks at PostgreSQL's schema.
      const m = await runTern(["migrate", "--config", config]);
      assert.equal(m.code, 0, m.stderr);
      const all = PG_MIGRATIONS.length;
      assert.ok(
        m.stdout.startsWith(
          `schema up to date: ${all}/${all} migration(s) applied (${
            PG_MIGRATIONS.at(-1)!.name
          }) in postgres://tern:***@`,
        ),
        m.stdout,
      );
    } finally {
      await relay?.stop();
      await Deno.remove(dir, { recursive: true });
      await pg.stop();
    }
  },
});

Deno.test({
  name: postgresNeed.title(
    "Delta Chat across two instances: one account's devices on A and on B, a third user on A",
  ),
  ignore: postgresNeed.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPostgres();
    const relays: TernProcess[] = [];
    const devices: Device[] = [];
    const timeout = 60_000;
    try {
      const url = await pg.createDatabase("cluster_dc");
      relays.push(await instance(url, "127.0.0.1"));
      relays.push(await instance(url, "127.0.0.2"));
      const [a, b] = relays;
      const alice = { address: "alice0001@[127.0.0.1]", password: "password-123456" };
      const carol = { address: "carol0001@[127.0.0.1]", password: "password-123456" };
      for (const u of [alice, carol]) {
        const r = await runTern([
          "accounts",
          "create",
          u.address,
          u.password,
          "--config",
          `${a.dir}/tern.toml`,
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const on = (relay: TernProcess, host: string) => ({
        host,
        imapPort: relay.port("imaps"),
        smtpPort: relay.port("submissions"),
      });
      const alice1 = await Device.start("alice1");
      const carolDev = await Device.start("carol");
      devices.push(alice1, carolDev);
      await alice1.configure(on(a, "127.0.0.1"), alice.address, alice.password);
      await carolDev.configure(on(a, "127.0.0.1"), carol.address, carol.password);
      const chats = await secureJoin(alice1, carolDev, timeout);

      // The second device: a backup of the first, then pointed at instance B.
      const dir = await Deno.makeTempDir({ prefix: "tern-cluster-backup-" });
      try {
        await alice1.rpc.stopIo(alice1.accountId);
        await alice1.rpc.exportBackup(alice1.accountId, dir, null);
        await alice1.startIo();
        const [backup] = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
        const alice2 = await Device.start("alice2");
        devices.push(alice2);
        await alice2.rpc.importBackup(alice2.accountId, backup, null);
        await alice2.configure(on(b, "127.0.0.2"), alice.address, alice.password);
        const t = await alice2.rpc.listTransports(alice2.accountId);
        assert.deepEqual(t.map((x) => x.imapServer), ["127.0.0.2"], "device two uses B");

        await carolDev.rpc.miscSendTextMessage(carolDev.accountId, chats.joinerChat, "to both");
        await alice1.waitForText("to both", timeout);
        await alice2.waitForText("to both", timeout);

        const alice2Chat = (await alice2.findText("to both"))!.chatId;
        await alice2.rpc.miscSendTextMessage(alice2.accountId, alice2Chat, "from device two");
        await carolDev.waitForText("from device two", timeout);
        const copy1 = await alice1.waitForText("from device two", timeout);
        assert.equal(copy1.fromId, 1, "device one shows it as its own outgoing message");

        await alice1.rpc.miscSendTextMessage(
          alice1.accountId,
          chats.inviterChat,
          "from device one",
        );
        await carolDev.waitForText("from device one", timeout);
        const copy2 = await alice2.waitForText("from device one", timeout);
        assert.equal(copy2.fromId, 1, "device two shows it as its own outgoing message");
        assert.ok(copy2.showPadlock);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    } finally {
      for (const d of devices) await d.stop();
      for (const r of relays) await r.stop();
      await pg.stop();
    }
  },
});

/** Messages with exactly this text over every chat of the device. */
async function countText(d: Device, text: string): Promise<number> {
  let n = 0;
  for (const chatId of await d.rpc.getChatlistEntries(d.accountId, null, null, null)) {
    for (const id of await d.rpc.getMessageIds(d.accountId, chatId, false, false)) {
      if ((await d.rpc.getMessage(d.accountId, id)).text === text) n++;
    }
  }
  return n;
}

Deno.test({
  name: postgresNeed.title(
    "migrate-store: Delta Chat clients of an SQLite relay carry on against it on PostgreSQL",
  ),
  ignore: postgresNeed.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPostgres();
    const dir = await Deno.makeTempDir({ prefix: "tern-migrate-dc-" });
    const devices: Device[] = [];
    let relay: TernProcess | null = null;
    const timeout = 60_000;
    try {
      // The same ports before and after, as the clients' configuration has them.
      const [imaps, submissions] = await freePorts(2);
      const listen = { imaps: `127.0.0.1:${imaps}`, submissions: `127.0.0.1:${submissions}` };
      relay = await startTern(LIMITS, { dir, listen });
      const config = `${dir}/tern.toml`;
      const users = [
        { address: "alice0001@[127.0.0.1]", password: "password-123456" },
        { address: "bobby0001@[127.0.0.1]", password: "password-123456" },
      ];
      for (const u of users) {
        const r = await runTern(["accounts", "create", u.address, u.password, "--config", config]);
        assert.equal(r.code, 0, r.stderr);
      }
      const server = { host: "127.0.0.1", imapPort: imaps, smtpPort: submissions };
      const alice = await Device.start("alice");
      const bob = await Device.start("bob");
      devices.push(alice, bob);
      await alice.configure(server, users[0].address, users[0].password);
      await bob.configure(server, users[1].address, users[1].password);
      const chats = await secureJoin(alice, bob, timeout);
      await alice.rpc.miscSendTextMessage(alice.accountId, chats.inviterChat, "on sqlite");
      await bob.waitForText("on sqlite", timeout);
      for (const d of devices) await d.rpc.stopIo(d.accountId);
      await relay.stop();
      relay = null;

      const url = await pg.createDatabase("migrated_dc");
      const r = await runTern(["migrate-store", "--to", url, "--config", config]);
      assert.equal(r.code, 0, r.stdout + r.stderr);

      relay = await startTern(`store = "postgres"\ndatabase_url = "${url}"\n${LIMITS}`, {
        dir,
        listen,
      });
      for (const d of devices) await d.startIo();
      await bob.rpc.miscSendTextMessage(bob.accountId, chats.joinerChat, "on postgres");
      const got = await alice.waitForText("on postgres", timeout);
      assert.ok(got.showPadlock, "still end-to-end encrypted: the keys carried over");
      await alice.rpc.miscSendTextMessage(alice.accountId, chats.inviterChat, "and back");
      await bob.waitForText("and back", timeout);
      // The message from before is there, once (Delta Chat drops duplicates by Message-ID, so this
      // shows nothing was lost; that UIDs stay the same is the previous test's).
      assert.equal(await countText(bob, "on sqlite"), 1);
      assert.equal(await countText(alice, "on sqlite"), 1);
    } finally {
      for (const d of devices) await d.stop();
      await relay?.stop();
      await Deno.remove(dir, { recursive: true });
      await pg.stop();
    }
  },
});
