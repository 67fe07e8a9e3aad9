// The transports' own writes (a WebSocket pong, the reply to a close) against a peer that never
// reads: a connection whose writes the peer never takes, as a full socket looks to the relay.

import assert from "node:assert/strict";
import { frameTransport, WriteTimeoutError } from "./frame_transport.ts";
import { maskedMessage } from "./test_client.ts";
import { Opcode } from "./websocket.ts";

/** A connection delivering `input`, whose writes are never taken (they stay pending). */
function neverReads(input: Uint8Array) {
  let off = 0;
  const writes: Uint8Array[] = [];
  return {
    writes,
    remoteAddress: "test",
    readExact(n: number) {
      if (off + n > input.length) return Promise.resolve(null);
      off += n;
      return Promise.resolve(input.slice(off - n, off));
    },
    readChunk() {
      if (off >= input.length) return Promise.resolve(null);
      const out = input.slice(off);
      off = input.length;
      return Promise.resolve(out);
    },
    write(bytes: Uint8Array) {
      writes.push(bytes);
      return new Promise<void>(() => {});
    },
    close: () => Promise.resolve(),
  };
}

Deno.test("websocket transport: a pong the peer never takes ends the read at the write deadline", async () => {
  const conn = neverReads(maskedMessage(Opcode.Ping, Uint8Array.of(1, 2, 3)));
  const t = frameTransport("websocket", conn, { writeTimeoutMs: 50 });
  await assert.rejects(t.read(), WriteTimeoutError);
  assert.equal(conn.writes.length, 1, "the pong was written");
});

Deno.test("websocket transport: the reply to a close the peer never takes does not hold the read", async () => {
  const conn = neverReads(maskedMessage(Opcode.Close, Uint8Array.of(0x03, 0xe8)));
  const t = frameTransport("websocket", conn, { writeTimeoutMs: 50 });
  assert.equal(await t.read(), null);
  assert.equal(conn.writes.length, 1, "the close reply was written");
});
