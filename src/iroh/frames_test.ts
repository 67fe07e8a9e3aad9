import assert from "node:assert/strict";
import {
  clientFrame,
  decodeClientFrame,
  encodeFrameMessage,
  encodeRelayFrames,
  FrameError,
  FrameType,
  healthFrame,
  isDiscoPacket,
  MAX_PACKET_BYTES,
  peerGoneFrame,
  pingFrame,
  pongFrame,
  recvPacketFrame,
  restartingFrame,
} from "./frames.ts";
import { clientInfoFrame, verifyClientInfo } from "./client_info.ts";

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (b) => parseInt(b, 16));
const enc = new TextEncoder();

/** The endpoint key of the secret key 42 × 32 (iroh's protocol snapshot uses it). */
export async function snapshotKeys() {
  const pkcs8 = new Uint8Array([
    ...hex("302e020100300506032b657004220420"),
    ...new Uint8Array(32).fill(42),
  ]);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, [
    "sign",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const publicKey = Uint8Array.from(
    atob(jwk.x!.replaceAll("-", "+").replaceAll("_", "/") + "="),
    (c) => c.charCodeAt(0),
  );
  return { publicKey, privateKey };
}

const KEY = hex("197f6b23e16c8532c6abc838facd5ea789be0c76b292033403 9bfa8b3d368d61");

// The WebSocket-message form (type byte + body) of iroh-relay 0.35's frame snapshot.
Deno.test("frames encode byte for byte as iroh-relay 0.35 does", async () => {
  const keys = await snapshotKeys();
  assert.deepEqual(keys.publicKey, KEY);
  assert.deepEqual(
    encodeFrameMessage(await clientInfoFrame(keys)),
    hex(`02 52 45 4c 41 59 f0 9f 94 91 19 7f 6b 23 e1 6c 85 32 c6 ab c8 38 fa cd 5e a7 89 be 0c 76
      b2 92 03 34 03 9b fa 8b 3d 36 8d 61 88 e7 7b 22 f2 92 ab 37 43 5d a8 de 0b c8 cb 84 e2 88
      f4 e7 3b 35 82 a5 27 31 e9 ff 98 65 46 5c 87 e0 5e 8d 42 7d f4 22 bb 6e 85 e1 c0 5f 6f 74
      98 37 ba a4 a5 c7 eb a3 23 0d 77 56 99 10 43 0e 03`),
  );
  assert.deepEqual(
    encodeFrameMessage(healthFrame("Hello? Yes this is dog.")),
    hex("0e 48 65 6c 6c 6f 3f 20 59 65 73 20 74 68 69 73 20 69 73 20 64 6f 67 2e"),
  );
  assert.deepEqual(encodeFrameMessage(clientFrame(FrameType.KeepAlive)), hex("06"));
  assert.deepEqual(
    encodeFrameMessage(clientFrame(FrameType.NotePreferred, Uint8Array.of(1))),
    hex("07 01"),
  );
  assert.deepEqual(encodeFrameMessage(peerGoneFrame(KEY)), new Uint8Array([8, ...KEY]));
  const d42 = new Uint8Array(8).fill(42);
  assert.deepEqual(encodeFrameMessage(pingFrame(d42)), hex("0c 2a 2a 2a 2a 2a 2a 2a 2a"));
  assert.deepEqual(encodeFrameMessage(pongFrame(d42)), hex("0d 2a 2a 2a 2a 2a 2a 2a 2a"));
  assert.deepEqual(
    encodeFrameMessage(recvPacketFrame(KEY, enc.encode("Hello World!"))),
    new Uint8Array([5, ...KEY, ...enc.encode("Hello World!")]),
  );
  assert.deepEqual(
    encodeFrameMessage(clientFrame(FrameType.SendPacket, KEY, enc.encode("Goodbye!"))),
    new Uint8Array([4, ...KEY, ...enc.encode("Goodbye!")]),
  );
  assert.deepEqual(
    encodeFrameMessage(restartingFrame(10, 20)),
    hex("0f 00 00 00 0a 00 00 00 14"),
  );
});

Deno.test("the snapshot ClientInfo passes the relay's handshake check", async () => {
  const f = await clientInfoFrame(await snapshotKeys());
  const body = encodeFrameMessage(f).subarray(1);
  const decoded = decodeClientFrame(FrameType.ClientInfo, body);
  assert.equal(decoded.type, "clientInfo");
  if (decoded.type === "clientInfo") await verifyClientInfo(decoded);
});

Deno.test("encodeRelayFrames() puts a type byte and a big-endian u32 length before each body", () => {
  const bytes = encodeRelayFrames([pingFrame(new Uint8Array(8).fill(1)), clientFrame(6)]);
  assert.deepEqual(bytes, hex("0c 00000008 0101010101010101 06 00000000"));
});

Deno.test("decodeClientFrame() checks each body's size and refuses unknown types", () => {
  const bad: [number, number][] = [
    [FrameType.Ping, 7],
    [FrameType.Ping, 9],
    [FrameType.Pong, 0],
    [FrameType.NotePreferred, 2],
    [FrameType.KeepAlive, 1],
    [FrameType.SendPacket, 31],
    [FrameType.SendPacket, 32 + MAX_PACKET_BYTES + 1],
    [FrameType.PeerGone, 31],
    [FrameType.Restarting, 9],
    [FrameType.RecvPacket, 3],
    [FrameType.ClientInfo, 9 + 32 + 63],
  ];
  for (const [type, n] of bad) {
    assert.throws(() => decodeClientFrame(type, new Uint8Array(n)), FrameError, `${type}/${n}`);
  }
  for (const type of [0, 1, 3, 9, 10, 11, 16, 255]) {
    assert.throws(() => decodeClientFrame(type, new Uint8Array(0)), FrameError, String(type));
  }
  assert.throws(() => decodeClientFrame(FrameType.NotePreferred, Uint8Array.of(2)), FrameError);
  assert.throws(
    () => decodeClientFrame(FrameType.ClientInfo, new Uint8Array(9 + 32 + 64 + 1)),
    /magic/,
  );
  const send = decodeClientFrame(FrameType.SendPacket, new Uint8Array(32 + MAX_PACKET_BYTES));
  assert.equal(send.type === "sendPacket" && send.packet.length, MAX_PACKET_BYTES);
  assert.deepEqual(decodeClientFrame(FrameType.RecvPacket, new Uint8Array(40)), {
    type: "ignored",
    typeByte: FrameType.RecvPacket,
  });
});

Deno.test("isDiscoPacket() recognises the disco magic followed by a key", () => {
  const magic = enc.encode("TS\u{1F4AC}");
  assert.equal(isDiscoPacket(new Uint8Array([...magic, ...new Uint8Array(32)])), true);
  assert.equal(isDiscoPacket(new Uint8Array([...magic, ...new Uint8Array(31)])), false);
  assert.equal(isDiscoPacket(new Uint8Array(64)), false);
});
