// TURN for calls: Delta Chat reads credentials from IMAP METADATA and the relay's embedded TURN
// server relays with them (checked with coturn's real client); turn_enabled off hides them.

import assert from "node:assert/strict";
import { createAccount, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";
import { freePort } from "./support/ports.ts";
import { requireTool } from "./support/tools.ts";

const dec = new TextDecoder();

const need = requireTool("turnutils_uclient");

Deno.test(
  need.title("METADATA hands out TURN credentials that the embedded TURN server accepts"),
  { ignore: need.ignore },
  async () => {
    // TURN cannot take port 0 (0 turns it off): a UDP port found free.
    const port = await freePort({ udp: true });
    await withRelay(async (t) => {
      const user = await createAccount(t, "alice0001");
      const { client } = await ImapTestClient.connect(t.addr("imaps"), {
        tls: true,
        caPem: t.caPem,
      });
      await client.login(user.address, user.password);
      // TURN starts in the background; wait until it hands out credentials.
      let r = await client.cmd('GETMETADATA "" /shared/vendor/deltachat/turn');
      for (let i = 0; i < 50 && / NIL\)/.test(r.untagged[0] ?? ""); i++) {
        await new Promise((ok) => setTimeout(ok, 100));
        r = await client.cmd('GETMETADATA "" /shared/vendor/deltachat/turn');
      }
      const m = /"\[127\.0\.0\.1\]:(\d+):(\d+):([A-Za-z0-9+/=]+)"/.exec(r.untagged[0] ?? "");
      assert.ok(m, r.untagged.join("\n"));
      assert.equal(Number(m[1]), port);
      assert.ok(Number(m[2]) > Date.now() / 1000 + 4 * 86400, "valid for about five days");
      const out = await new Deno.Command("turnutils_uclient", {
        args: [
          "-y",
          "-c",
          "-z",
          "5",
          "-n",
          "20",
          "-l",
          "200",
          "-u",
          m[2],
          "-w",
          m[3],
          "-p",
          m[1],
          "127.0.0.1",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = dec.decode(out.stdout) + dec.decode(out.stderr);
      assert.equal(out.code, 0, text);
      const totals = [...text.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].pop();
      assert.ok(totals && Number(totals[1]) >= 40 && totals[1] === totals[2], text);
      assert.match(text, /Total lost packets 0/);

      await t.relay.services.settings.set("turn_enabled", "false");
      const off = await client.cmd('GETMETADATA "" /shared/vendor/deltachat/turn');
      assert.match(off.untagged[0], /\/shared\/vendor\/deltachat\/turn NIL/);
      client.close();
    }, { overrides: { turn_port: port } });
  },
);
