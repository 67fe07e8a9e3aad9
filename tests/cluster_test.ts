// Two tern instances (127.0.0.1 and 127.0.0.2) sharing one PostgreSQL database (store =
// "postgres"), as README "Growing beyond one machine" describes: accounts made through one are
// served by the other, and a message accepted on A wakes an IDLE session on B at once (the event
// buses are bridged with LISTEN/NOTIFY).

import assert from "node:assert/strict";
import { runTern } from "./support/util.ts";
import { startTern, type TernProcess } from "./support/tern_process.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { encryptedMessage } from "./support/messages.ts";
import { postgresNeed, startPostgres } from "./support/postgres.ts";

const LIMITS = "max_user_send_per_minute = 1000000\nmax_user_send_burst_size = 1000000";

/** Instance `ip` of the IP relay [127.0.0.1] on the database at `url`. */
function instance(url: string, ip: string, extra = ""): Promise<TernProcess> {
  return startTern(
    [
      `store = "postgres"`,
      `database_url = "${url}"`,
      // Its own name in its certificate; the mail domain stays the relay's.
      `hostname = "${ip}"`,
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
    "two instances on one PostgreSQL: mail accepted on A wakes an IDLE session on B",
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
        latencies.sort((x, y) => x - y);
        console.log(
          `cluster: 250 on A -> EXISTS on B: median ${latencies[2].toFixed(1)} ms, max ${
            latencies[4].toFixed(1)
          } ms (5 messages, the 250 read by the client first)`,
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
