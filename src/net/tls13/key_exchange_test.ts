import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { exchange, exchangeGarbage, X25519_SPKI } from "./key_exchange.ts";
import { Group } from "./suites.ts";

Deno.test("key exchange: each X25519 exchange counts its native garbage for a collection", () => {
  const client = generateKeyPairSync("x25519").publicKey.export({ format: "der", type: "spki" });
  const share = new Uint8Array(client.subarray(X25519_SPKI.length));
  const before = exchangeGarbage.counted;
  for (let i = 0; i < 3; i++) {
    const r = exchange(Group.x25519, share);
    assert.equal(r.serverShare.length, 32);
    assert.equal(r.shared.length, 32);
  }
  assert.ok(exchangeGarbage.counted - before >= 3 * 2048, `counted ${exchangeGarbage.counted}`);
});
