import assert from "node:assert/strict";
import {
  CloseCode,
  Opcode,
  websocketAccept,
  WebSocketError,
  websocketFrame,
  WebSocketReader,
} from "./websocket.ts";
import { maskedMessage } from "./test_client.ts";

/** Serves bytes as a connection would, in arbitrary chunks. */
function source(...parts: Uint8Array[]) {
  let buf = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  let reads = 0;
  return {
    get reads() {
      return reads;
    },
    readExact(n: number) {
      reads++;
      if (buf.length < n) return Promise.resolve(null);
      const out = buf.slice(0, n);
      buf = buf.subarray(n);
      return Promise.resolve(out);
    },
  };
}

Deno.test("websocketAccept() follows RFC 6455 §1.3", () => {
  assert.equal(websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("WebSocketReader joins fragments and keeps them across a ping in between", async () => {
  const r = new WebSocketReader(
    source(
      maskedMessage(Opcode.Binary, Uint8Array.of(1, 2), false),
      maskedMessage(Opcode.Ping, Uint8Array.of(9)),
      maskedMessage(Opcode.Pong, Uint8Array.of(8)),
      maskedMessage(Opcode.Continuation, Uint8Array.of(3), true),
      maskedMessage(Opcode.Binary, new Uint8Array(70_000).fill(7)),
      maskedMessage(Opcode.Close, Uint8Array.of(0x03, 0xe8)),
    ),
    100_000,
  );
  assert.deepEqual(await r.next(), { kind: "ping", data: Uint8Array.of(9) });
  assert.deepEqual(await r.next(), { kind: "binary", data: Uint8Array.of(1, 2, 3) });
  const big = await r.next();
  assert.equal(big?.kind === "binary" && big.data.length, 70_000);
  assert.deepEqual(await r.next(), { kind: "close", code: 1000 });
  assert.equal(await r.next(), null);
});

Deno.test("WebSocketReader refuses unmasked, text, oversized and malformed frames", async () => {
  const cases: [Uint8Array, number][] = [
    [websocketFrame(Opcode.Binary, Uint8Array.of(1)), CloseCode.ProtocolError],
    [maskedMessage(Opcode.Text, Uint8Array.of(65)), CloseCode.UnsupportedData],
    [maskedMessage(Opcode.Continuation, Uint8Array.of(1)), CloseCode.ProtocolError],
    [maskedMessage(Opcode.Ping, new Uint8Array(126)), CloseCode.ProtocolError],
    [maskedMessage(Opcode.Ping, Uint8Array.of(1), false), CloseCode.ProtocolError],
    [maskedMessage(0x3, Uint8Array.of(1)), CloseCode.ProtocolError],
    [Uint8Array.of(0xc2, 0x80, 0, 0, 0, 0), CloseCode.ProtocolError], // RSV1
    [maskedMessage(Opcode.Close, Uint8Array.of(1)), CloseCode.ProtocolError],
  ];
  for (const [bytes, code] of cases) {
    await assert.rejects(
      new WebSocketReader(source(bytes), 1000).next(),
      (e) => e instanceof WebSocketError && e.closeCode === code,
      String(bytes.subarray(0, 2)),
    );
  }
});

Deno.test("WebSocketReader refuses an oversized message from its header, before the payload", async () => {
  const src = source(Uint8Array.of(0x82, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff));
  await assert.rejects(new WebSocketReader(src, 1000).next(), /over 1000 bytes/);
  assert.equal(src.reads, 2, "header and length only");
  const fragments = source(
    maskedMessage(Opcode.Binary, new Uint8Array(600), false),
    maskedMessage(Opcode.Continuation, new Uint8Array(600)),
  );
  await assert.rejects(new WebSocketReader(fragments, 1000).next(), /over 1000 bytes/);
  const huge = source(Uint8Array.of(0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0));
  await assert.rejects(new WebSocketReader(huge, 1000).next(), /over 4 GiB/);
});

Deno.test("WebSocketReader ends with null when the stream is cut mid-frame", async () => {
  const whole = maskedMessage(Opcode.Binary, new Uint8Array(300));
  for (const cut of [1, 2, 3, 5, 8, 100]) {
    assert.equal(await new WebSocketReader(source(whole.subarray(0, cut)), 1000).next(), null);
  }
});

Deno.test("WebSocketReader refuses a message cut into very many fragments (empty ones too)", async () => {
  // Empty continuation frames cost 6 bytes on the wire each and counted nothing against the size
  // cap: a client (before its handshake, too) could grow one message's fragment list forever.
  const empty = maskedMessage(Opcode.Continuation, new Uint8Array(0), false);
  const parts = [maskedMessage(Opcode.Binary, Uint8Array.of(1), false)];
  for (let i = 0; i < 10_000; i++) parts.push(empty);
  const src = source(...parts);
  await assert.rejects(
    new WebSocketReader(src, 100_000).next(),
    (err) => err instanceof WebSocketError && err.closeCode === CloseCode.PolicyViolation,
  );
  assert.ok(src.reads < 1000, `read ${src.reads} times before refusing`);
  // A message in a few fragments is still fine.
  const few = source(
    maskedMessage(Opcode.Binary, Uint8Array.of(1), false),
    ...Array.from({ length: 10 }, () => empty),
    maskedMessage(Opcode.Continuation, Uint8Array.of(2), true),
  );
  const got = await new WebSocketReader(few, 100_000).next();
  assert.deepEqual(got, { kind: "binary", data: Uint8Array.of(1, 2) });
});
