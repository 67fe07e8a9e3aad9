// A real tern process under the failures of issue 16: a client that asks for megabytes and leaves
// without reading (the process must stay up and say nothing), and SIGTERM in the middle of
// submission load (every message answered 250 is stored exactly once, none is answered 421
// after being stored, and the process ends within its grace).

import assert from "node:assert/strict";
import { imapLogin, startTern, type TernProcess } from "./support/tern_process.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { armoredPayload, pgpMime } from "./support/messages.ts";

const PASSWORD = "password-123456";
const imap = (tern: TernProcess, local: string) => imapLogin(tern, local, PASSWORD);

Deno.test("a client that asks for 9 MB and leaves without reading does not stop tern", async () => {
  const tern = await startTern("", { log: "off" });
  try {
    const setup = await imap(tern, "fetcher01");
    const body = new Uint8Array(3 << 20).fill(0x41);
    for (let i = 0; i < 3; i++) {
      await setup.write(`a${i} APPEND INBOX {${body.length + 2}+}\r\n\r\n`);
      await setup.write(body);
      await setup.write("\r\n");
      assert.match((await setup.response(`a${i}`)).status, /^OK/);
    }
    setup.close();
    for (let round = 0; round < 6; round++) {
      const c = await imap(tern, "fetcher01");
      if (round % 2) {
        assert.match((await c.cmd("z", "COMPRESS DEFLATE")).status, /^OK/);
        c.startCompression();
      }
      assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
      await c.write("f UID FETCH 1:* BODY[]\r\n");
      if (round % 3 === 0) c.reset();
      else c.close();
    }
    // Still serving, and nothing was printed about clients that left.
    const after = await imap(tern, "fetcher01");
    assert.match((await after.cmd("n", "NOOP")).status, /^OK/);
    assert.match((await after.cmd("o", "LOGOUT")).status, /^OK/);
    after.close();
    assert.doesNotMatch(tern.stderr(), /Uncaught|BrokenPipe|session failed|connection failed/);
  } finally {
    await tern.stop();
  }
});

Deno.test("SIGTERM under submission load: every 250 stored once, none twice, exit within the grace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-sigterm-" });
  const toml = [
    "max_user_send_per_minute = 100000",
    "max_user_send_burst_size = 100000",
    "shutdown_grace_seconds = 3",
  ].join("\n");
  try {
    let tern = await startTern(toml, { log: "off", dir });
    const rcpt = `rcpt00001@${tern.domain}`;
    (await imap(tern, "rcpt00001")).close();
    // Big enough that some DATA is in flight at any moment.
    const armored = await armoredPayload("x".repeat(500_000));
    const acked = new Set<string>();
    const refused: string[] = [];
    let sent = 0;
    const sender = async (n: number) => {
      const from = `sendr000${n}@${tern.domain}`;
      const c = await SmtpTestClient.connect({
        hostname: "127.0.0.1",
        port: tern.port("submissions"),
      }, {
        tls: true,
        caPem: tern.caPem,
      });
      try {
        await c.reply();
        await c.cmd("EHLO load.test");
        assert.equal((await c.login(from, PASSWORD)).code, 235);
        while (true) {
          const message = pgpMime(from, rcpt, armored);
          const id = /^Message-ID: (<[^>]+>)/m.exec(message)![1];
          let r;
          try {
            r = await c.sendMail(from, [rcpt], message);
          } catch {
            return; // the connection ended (shutdown)
          }
          sent++;
          if (r.code === 250) acked.add(id);
          else {
            refused.push(r.text);
            return;
          }
        }
      } finally {
        c.close();
      }
    };
    const senders = Array.from({ length: 8 }, (_, i) => sender(i));
    while (acked.size < 40) await new Promise((r) => setTimeout(r, 20));
    Deno.kill(tern.pid, "SIGTERM");
    // The listeners stop at once, sessions get 3 s; the process ends by itself well before the
    // test would kill it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      tern.status.then((s) => s.code),
      new Promise<string>((r) => (timer = setTimeout(() => r("still running after 10 s"), 10_000))),
    ]);
    clearTimeout(timer);
    assert.equal(exited, 0, tern.stderr());
    await Promise.all(senders);
    await tern.stop();
    for (const text of refused) assert.match(text, /^421 4\.3\.2 /);

    // What was stored: each Message-ID once, and exactly the acknowledged ones.
    tern = await startTern(toml, { log: "off", dir });
    try {
      const c = await imap(tern, "rcpt00001");
      assert.match((await c.cmd("s", "SELECT INBOX")).status, /^OK/);
      const r = await c.cmd("f", "FETCH 1:* BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", 30_000, true);
      c.close();
      const stored = r.untagged.join("\n").match(/<[0-9a-f-]+@localhost>/g) ?? [];
      assert.ok(sent >= acked.size && acked.size >= 40, `${acked.size} acknowledged of ${sent}`);
      assert.equal(new Set(stored).size, stored.length, "no message stored twice");
      assert.deepEqual(new Set(stored), acked, "stored exactly the acknowledged messages");
    } finally {
      await tern.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
