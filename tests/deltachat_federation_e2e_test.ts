// Two tern relays (IP relays on 127.0.0.1 and 127.0.0.2, peers on the standard ports 25 and 443)
// with real Delta Chat clients on each: Secure-Join and a chat across relays. Binding ports 25
// and 443 needs root, as in CI.

import assert from "node:assert/strict";
import { newAccount, startTern, type TernProcess } from "./support/tern_process.ts";
import { Device, secureJoin } from "./support/deltachat.ts";
import { requireRoot } from "./support/tools.ts";

const need = requireRoot();

Deno.test({
  name: need.title("Delta Chat across two relays: Secure-Join and messages both ways"),
  ignore: need.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const relays: TernProcess[] = [];
    const devices: Device[] = [];
    try {
      for (const ip of ["127.0.0.1", "127.0.0.2"]) {
        // Each delivers to the other's loopback address: refused unless allowed.
        relays.push(
          await startTern("outbound_allow_private = true", {
            ip,
            listen: { smtp: `${ip}:25`, https: `${ip}:443` },
          }),
        );
      }
      const [a, b] = relays;
      const alice = await Device.start("alice");
      const bob = await Device.start("bob");
      devices.push(alice, bob);
      await alice.configureFromQr((await newAccount(a)).dclogin_url);
      await bob.configureFromQr((await newAccount(b)).dclogin_url);
      assert.match(alice.address, /@\[127\.0\.0\.1\]$/);
      assert.match(bob.address, /@\[127\.0\.0\.2\]$/);
      const chats = await secureJoin(alice, bob, 60_000);
      const started = performance.now();
      await alice.rpc.miscSendTextMessage(alice.accountId, chats.inviterChat, "across relays");
      const got = await bob.waitForText("across relays", 30_000);
      assert.ok(got.showPadlock);
      const ab = performance.now() - started;
      await bob.rpc.miscSendTextMessage(bob.accountId, chats.joinerChat, "and back");
      await alice.waitForText("and back", 30_000);
      console.log(
        `e2e federation: Secure-Join and chat across relays ok, A->B ${Math.round(ab)} ms`,
      );
    } finally {
      for (const d of devices) await d.stop();
      for (const r of relays) await r.stop();
    }
  },
});
