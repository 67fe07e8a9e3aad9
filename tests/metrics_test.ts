// /metrics reflects the mail protocols: SMTP sessions and results by reply class, deliveries,
// IMAP connections and sessions in IDLE; and it parses as Prometheus text.

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage, plainMessage } from "./support/messages.ts";

function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return NaN;
}

Deno.test("metrics count SMTP results, deliveries, IMAP connections and IDLE sessions", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    await client.login(b.address, b.password);
    await client.cmd("SELECT INBOX");
    const tag = client.nextTag();
    await client.send(`${tag} IDLE\r\n`);
    await client.readResponse();
    const smtp = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    await smtp.reply();
    await smtp.cmd("EHLO x.test");
    await smtp.login(a.address, a.password);
    assert.equal(
      (await smtp.sendMail(a.address, [b.address], await encryptedMessage(a.address, b.address)))
        .code,
      250,
    );
    assert.equal(
      (await smtp.sendMail(a.address, [b.address], plainMessage(a.address, b.address))).code,
      523,
    );
    smtp.close();
    assert.equal(await client.readResponse(), "* 1 EXISTS");
    const text = await (await fetch(`http://${t.relay.addresses.metrics}/metrics`)).text();
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      assert.match(
        line,
        /^[a-z_:][a-z0-9_:]*(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? -?[0-9.e+Inf]+$/i,
        line,
      );
    }
    assert.equal(sample(text, "tern_imap_idle_sessions"), 1);
    assert.equal(sample(text, "tern_imap_connections", { listener: "imaps" }), 1);
    assert.equal(
      sample(text, "tern_smtp_results_total", { listener: "submissions", class: "2xx" }),
      1,
    );
    assert.equal(
      sample(text, "tern_smtp_results_total", { listener: "submissions", class: "5xx" }),
      1,
    );
    assert.equal(
      sample(text, "tern_deliveries_total", { target: "local", outcome: "delivered" }),
      1,
    );
    await client.send("DONE\r\n");
    await client.collect(tag);
    client.close();
  }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
});
