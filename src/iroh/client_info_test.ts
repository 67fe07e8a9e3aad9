import assert from "node:assert/strict";
import {
  clientInfoFrame,
  encodeVarint,
  HandshakeError,
  isWeakKey,
  readVarint,
  verifyClientInfo,
} from "./client_info.ts";
import { decodeClientFrame, encodeFrameMessage, FrameType } from "./frames.ts";
import { newKeys } from "./test_client.ts";

async function info(version = 3) {
  const keys = await newKeys();
  const body = encodeFrameMessage(await clientInfoFrame(keys, version)).subarray(1);
  const f = decodeClientFrame(FrameType.ClientInfo, body);
  if (f.type !== "clientInfo") throw new Error("not ClientInfo");
  return { ...f, keys };
}

async function failure(p: Promise<void>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HandshakeError) return err.reason;
    throw err;
  }
  return "accepted";
}

Deno.test("verifyClientInfo() accepts a version 3 ClientInfo signed by its key", async () => {
  assert.equal(await failure(verifyClientInfo(await info())), "accepted");
});

Deno.test("verifyClientInfo() refuses another key, a bad signature and other versions", async () => {
  const a = await info();
  const b = await info();
  assert.equal(await failure(verifyClientInfo({ ...a, key: b.key })), "bad_signature");
  const sig = a.signature.slice();
  sig[10] ^= 1;
  assert.equal(await failure(verifyClientInfo({ ...a, signature: sig })), "bad_signature");
  // A signature over other message bytes (version 2 signed, version 3 claimed).
  assert.equal(
    await failure(verifyClientInfo({ ...a, message: Uint8Array.of(2) })),
    "bad_signature",
  );
  assert.equal(await failure(verifyClientInfo(await info(2))), "bad_version");
  assert.equal(await failure(verifyClientInfo(await info(300))), "bad_version");
  // Bytes that are no curve point at all.
  assert.equal(
    await failure(verifyClientInfo({ ...a, key: new Uint8Array(32).fill(0xff) })),
    "bad_signature",
  );
});

Deno.test("verifyClientInfo() refuses an empty or truncated postcard message", async () => {
  const keys = await newKeys();
  for (const message of [new Uint8Array(0), Uint8Array.of(0x83)]) {
    const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", keys.privateKey, message));
    assert.equal(
      await failure(verifyClientInfo({ key: keys.publicKey, signature, message })),
      "bad_message",
    );
  }
  // Trailing bytes after the version are ignored, as postcard::from_bytes does.
  const message = Uint8Array.of(3, 99, 98);
  const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", keys.privateKey, message));
  assert.equal(
    await failure(verifyClientInfo({ key: keys.publicKey, signature, message })),
    "accepted",
  );
});

Deno.test("isWeakKey() matches small-order points with either sign bit", async () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  assert.equal(isWeakKey(identity), true);
  const signed = identity.slice();
  signed[31] |= 0x80;
  assert.equal(isWeakKey(signed), true);
  assert.equal(isWeakKey(new Uint8Array(32)), true);
  assert.equal(isWeakKey((await newKeys()).publicKey), false);
  const a = await info();
  assert.equal(await failure(verifyClientInfo({ ...a, key: identity })), "weak_key");
});

Deno.test("readVarint() reads LEB128 and refuses unterminated input", () => {
  for (const n of [0, 3, 127, 128, 300, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    assert.equal(readVarint(encodeVarint(n)), n);
  }
  assert.equal(readVarint(Uint8Array.of(0x80, 0x80)), null);
  assert.equal(readVarint(new Uint8Array(11).fill(0xff)), null);
});
