// TURN for calls: Delta Chat reads credentials from IMAP METADATA and the relay's embedded TURN
// server relays with them (checked with coturn's real client); turn_enabled off hides them.

import assert from "node:assert/strict";
import { freePort } from "./support/ports.ts";
import { requireTool } from "./support/tools.ts";
import { createAccount, withRelay } from "./support/relay.ts";
import type { TestRelay } from "./support/relay.ts";
import { Client, Endpoint, errorCode, peerAttr } from "../src/turn/testdata/turn_client.ts";
import { Attr, Class, encodeStun, Method, text, utf8 } from "../src/turn/stun.ts";
import type { StunAttribute } from "../src/turn/stun.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";

const dec = new TextDecoder();

const needUclient = requireTool("turnutils_uclient");

Deno.test(
  needUclient.title("METADATA hands out TURN credentials that the embedded TURN server accepts"),
  { ignore: needUclient.ignore },
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
      const m = /^127\.0\.0\.1:(\d+):(\d+):([A-Za-z0-9+/=]+)$/.exec(
        metadataValue(r.untagged[0] ?? "", "/shared/vendor/deltachat/turn") ?? "",
      );
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
    }, { overrides: { turn_port: port, turn_allowed_peers: "127.0.0.0/8" } });
  },
);

/** TURN credentials from METADATA, waiting until TURN has started in the background. */
async function turnCredentialsOf(t: TestRelay) {
  const user = await createAccount(t, "caller001");
  const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
  try {
    await client.login(user.address, user.password);
    for (let i = 0; i < 100; i++) {
      const r = await client.cmd('GETMETADATA "" /shared/vendor/deltachat/turn');
      const m = /^127\.0\.0\.1:(\d+):(\d+):([A-Za-z0-9+/=]+)$/.exec(
        metadataValue(r.untagged[0] ?? "", "/shared/vendor/deltachat/turn") ?? "",
      );
      if (m) return { port: Number(m[1]), username: m[2], password: m[3] };
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error("TURN did not start");
  } finally {
    client.close();
  }
}

Deno.test("TURN relays only to allowed peers: private and loopback ones get 403", async () => {
  const port = await freePort({ udp: true });
  await withRelay(async (t) => {
    const creds = await turnCredentialsOf(t);
    const c = await Client.open({ port: creds.port }, "127.0.0.1", t.domain);
    const allowed = await Endpoint.open("127.0.0.1");
    const denied = await Endpoint.open("127.0.0.2");
    try {
      const alloc = await c.allocate(creds);
      assert.equal(alloc.cls, Class.Success, `Allocate: ${errorCode(alloc)}`);
      const ask = async (
        method: number,
        ip: string,
        peerPort: number,
        extra: StunAttribute[] = [],
      ) => {
        const tid = crypto.getRandomValues(new Uint8Array(12));
        const peer = { family: 4 as const, ip, port: peerPort };
        return errorCode(await c.request(method, [...extra, peerAttr(peer, tid)], { tid }));
      };
      const channel = (n: number) => [
        { type: Attr.ChannelNumber, value: new Uint8Array([n >> 8, n & 0xff, 0, 0]) },
      ];
      for (const ip of ["127.0.0.2", "10.0.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1"]) {
        assert.equal(await ask(Method.CreatePermission, ip, 9), 403, ip);
        assert.equal(await ask(Method.ChannelBind, ip, 9, channel(0x4001)), 403, ip);
      }
      // Send to a denied peer is dropped; the allowed (listed) peer gets its data.
      const bad = { family: 4 as const, ip: "127.0.0.2", port: denied.port };
      const indication = (peer: typeof bad, data: string) => {
        const tid = crypto.getRandomValues(new Uint8Array(12));
        return encodeStun({
          method: Method.Send,
          cls: Class.Indication,
          transactionId: tid,
          attributes: [peerAttr(peer, tid), { type: Attr.Data, value: utf8(data) }],
        });
      };
      c.send(indication(bad, "to the denied peer"));
      assert.equal(await ask(Method.CreatePermission, "127.0.0.1", allowed.port), null);
      const good = { family: 4 as const, ip: "127.0.0.1", port: allowed.port };
      c.send(indication(good, "to the allowed peer"));
      assert.equal(text((await allowed.recv())?.data), "to the allowed peer");
      assert.equal(await denied.recv(200), null);
    } finally {
      await c.close();
      await allowed.close();
      await denied.close();
    }
  }, { overrides: { turn_port: port, turn_allowed_peers: "127.0.0.1" } });
});
