// Crash safety: SIGKILL the relay in the middle of a submission load (8 sessions, small messages
// stored inline, medium ones appended to a body segment, large ones stored as files, group commit); after a restart on the same data
// directory every message that got 250 is in the INBOX exactly once with its body intact, and
// queued mail for other relays is still queued.

import assert from "node:assert/strict";
import { runTern } from "./support/util.ts";
import { startTern } from "./support/tern_process.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { armoredPayload, pgpMime } from "./support/messages.ts";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
/** What follows the header block: header cleanup leaves it as sent. */
const textOf = (message: string) => message.slice(message.indexOf("\r\n\r\n") + 4);

// The other relay is on a loopback address, which outbound delivery refuses unless allowed.
const LIMITS = "max_user_send_per_minute = 1000000\nmax_user_send_burst_size = 1000000\n" +
  "outbound_allow_private = true";

Deno.test({
  name: "kill -9 during submissions: every 250 survives exactly once, the queue resumes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tern-crash-" });
    try {
      let relay = await startTern(LIMITS, { dir });
      const config = `${dir}/tern.toml`;
      const alice = { address: "alice0001@[127.0.0.1]", password: "password-123456" };
      const bob = { address: "bobby0001@[127.0.0.1]", password: "password-123456" };
      for (const u of [alice, bob]) {
        assert.equal(
          (await runTern(["accounts", "create", u.address, u.password, "--config", config])).code,
          0,
        );
      }
      const caPem = await Deno.readTextFile(`${dir}/data/tls/selfsigned-ca.pem`);
      const armored = await armoredPayload("crash test");
      // Past the inline limit: stored as a body file, fsynced before its commit.
      const large = await armoredPayload("x".repeat(150_000));
      // Between SEGMENT_MIN and the inline limit: appended to a body segment, synced before its
      // commit.
      const medium = await armoredPayload("y".repeat(60_000));
      const accepted = new Map<string, string>();
      const connect = async () => {
        const c = await SmtpTestClient.connect(
          { hostname: "127.0.0.1", port: relay.port("submissions") },
          { tls: true, caPem },
        );
        await c.reply();
        await c.cmd("EHLO x.test");
        await c.login(alice.address, alice.password);
        return c;
      };
      // One message for another relay, queued before the crash.
      const q = await connect();
      assert.equal(
        (await q.sendMail(
          alice.address,
          ["carol@[127.0.0.9]"],
          pgpMime(alice.address, "carol@[127.0.0.9]", armored),
        ))
          .code,
        250,
      );
      q.close();
      let stop = false;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        const c = await connect();
        for (let i = 0; !stop; i++) {
          const kind = (i + w) % 5;
          const payload = kind === 0 ? large : kind === 2 ? medium : armored;
          const msg = pgpMime(alice.address, bob.address, payload);
          const id = /^Message-ID: <([^>]+)>/m.exec(msg)![1];
          try {
            const r = await c.sendMail(alice.address, [bob.address], msg);
            if (r.code === 250) accepted.set(id, sha(textOf(msg)));
          } catch {
            break; // the relay is gone
          }
        }
        c.close();
      });
      // Crash in the middle of a stream of submissions: after the 20th 250, with more in flight.
      const deadline = Date.now() + 60_000;
      while (accepted.size < 20 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      relay.kill();
      stop = true;
      await Promise.all(workers);
      await relay.stop();
      assert.ok(accepted.size >= 20, `only ${accepted.size} messages accepted in 60 s`);

      relay = await startTern(LIMITS, { dir });
      try {
        const { client } = await ImapTestClient.connect(
          { hostname: "127.0.0.1", port: relay.port("imaps") },
          { tls: true, caPem },
        );
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
        // Every accepted body is whole: one message at a time (large ones are files).
        for (let seq = 1; seq <= ids.length; seq++) {
          const id = ids[seq - 1]!;
          if (!accepted.has(id)) continue;
          const t = await client.cmd(`FETCH ${seq} (BODY.PEEK[TEXT])`);
          const line = t.untagged.find((l) => l.includes("BODY[TEXT]"))!;
          const text = line.slice(line.indexOf("}\r\n") + 3, line.lastIndexOf(")"));
          assert.equal(sha(text), accepted.get(id), `body of ${id}`);
        }
        client.close();
        // The medium ones went to a body segment, and no body points past its file's end.
        const db = new DatabaseSync(`${dir}/data/tern.db`, { readOnly: true });
        try {
          const rows = db.prepare(
            `SELECT f.name, f.live, b.file_offset + b.size - length(b.data) AS body_end
             FROM bodies b JOIN body_files f ON f.id = b.file_id`,
          ).all() as { name: string; live: number | null; body_end: number }[];
          assert.ok(rows.some((r) => r.live !== null), "a body segment holds the medium messages");
          for (const r of rows) {
            const { size } = await Deno.stat(`${dir}/data/bodies/${r.name}`);
            assert.ok(
              r.body_end <= size,
              `a body ends at ${r.body_end} in a file of ${size} bytes`,
            );
          }
        } finally {
          db.close();
        }
        console.log(
          `crash: ${accepted.size} accepted before kill -9, all present once and whole (${ids.length} stored)`,
        );
        const queue = await runTern(["queue", "list", "--config", config]);
        assert.match(queue.stdout, /<alice0001@\[127\.0\.0\.1\]>/, queue.stdout + queue.stderr);
      } finally {
        await relay.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
