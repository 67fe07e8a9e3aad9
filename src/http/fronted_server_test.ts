import assert from "node:assert/strict";
import { parseHead, readHead } from "./fronted_server.ts";

const enc = new TextEncoder();

Deno.test("parseHead() reads the request line and fields of an HTTP/1.x head", () => {
  const h = parseHead(
    enc.encode("GET /relay?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: iroh derp http\r\nX-A: 1\r\nx-a: 2"),
  );
  assert.equal(h?.method, "GET");
  assert.equal(h?.path, "/relay");
  assert.equal(h?.headers.get("upgrade"), "iroh derp http");
  assert.equal(h?.headers.get("X-A"), "1, 2");
  assert.equal(parseHead(enc.encode("GET http://a.example/relay HTTP/1.1"))?.path, "/relay");
  for (const bad of ["", "GET /relay HTTP/2", "get /relay HTTP/1.1", "GET relay HTTP/1.1"]) {
    assert.equal(parseHead(enc.encode(bad)), null, JSON.stringify(bad));
  }
  for (
    const bad of [
      "GET /relay HTTP/1.1\r\nno colon",
      "GET /relay HTTP/1.1\r\n: empty name",
      "GET /relay HTTP/1.1\r\nBad Name: x",
    ]
  ) {
    assert.equal(parseHead(enc.encode(bad))?.valid, false, JSON.stringify(bad));
  }
  assert.equal(h?.valid, true);
});

Deno.test("readHead() finds the head end across chunks and keeps every byte read", async () => {
  const text = "GET /relay HTTP/1.1\r\nUpgrade: websocket\r\n\r\nFRAMES";
  const chunks = [...text].map((c) => enc.encode(c));
  const r = await readHead({ readChunk: () => Promise.resolve(chunks.shift() ?? null) });
  assert.equal(r.head?.headers.get("upgrade"), "websocket");
  assert.equal(new TextDecoder().decode(r.raw.subarray(r.headBytes)), "");
  assert.equal(r.headBytes, text.indexOf("FRAMES"));
  const rest = await readHead({
    readChunk: (() => {
      const c = [enc.encode(text)];
      return () => Promise.resolve(c.shift() ?? null);
    })(),
  });
  assert.equal(new TextDecoder().decode(rest.raw.subarray(rest.headBytes)), "FRAMES");
});

Deno.test("readHead() gives up after 16 KiB or at the end of the stream, keeping the bytes", async () => {
  const big = [enc.encode("GET / HTTP/1.1\r\nX: " + "a".repeat(20_000))];
  const r = await readHead({ readChunk: () => Promise.resolve(big.shift() ?? null) });
  assert.equal(r.head, null);
  assert.ok(r.raw.length > 16 * 1024);
  const cut = [enc.encode("GET / HTTP/1.1\r\n")];
  const c = await readHead({ readChunk: () => Promise.resolve(cut.shift() ?? null) });
  assert.equal(c.head, null);
  assert.equal(c.raw.length, 16);
});

Deno.test("readHead() stops at its deadline and keeps what came", async () => {
  let t = 0;
  const chunks = [enc.encode("GET / HT"), enc.encode("TP/1.1\r\n"), enc.encode("never read")];
  const readChunk = () => {
    t += 20; // each piece arrives 20 ms after the last
    return Promise.resolve(chunks.shift() ?? null);
  };
  const r = await readHead({ readChunk }, { totalMs: 30, now: () => t });
  assert.equal(r.head, null);
  assert.equal(new TextDecoder().decode(r.raw), "GET / HTTP/1.1\r\n");
});
