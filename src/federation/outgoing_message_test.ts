import assert from "node:assert/strict";
import {
  bytesMessage,
  DotStuffer,
  type OutgoingMessage,
  PIECE,
  readPrefix,
  storedMessage,
} from "./outgoing_message.ts";
import { dotStuff } from "./smtp_client.ts";
import { dkimSignatureField, generateDkimKey, signMessage } from "./dkim.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function all(m: OutgoingMessage): Promise<Uint8Array> {
  const out = new Uint8Array(m.size);
  let at = 0;
  for await (const p of m.pieces()) {
    assert.ok(p.length <= PIECE, "a piece is at most PIECE bytes");
    out.set(p, at);
    at += p.length;
  }
  assert.equal(at, m.size);
  return out;
}

/** A stored body that counts its reads and gives at most `chunk` bytes per read. */
function ranged(bytes: Uint8Array, chunk = Infinity) {
  const reads: number[] = [];
  return {
    reads,
    size: bytes.length,
    read(offset: number, length: number) {
      reads.push(length);
      return Promise.resolve(bytes.slice(offset, offset + Math.min(length, chunk)));
    },
  };
}

Deno.test("DotStuffer gives dotStuff's result however the data is split", () => {
  const cases = [".a\r\nb\r\n..c\r\n", "no newline", "", "x.\r\n.\r\n", "\r\n.\r\n.", ".", "a\r"];
  for (const text of cases) {
    const bytes = enc.encode(text);
    const want = dec.decode(dotStuff(bytes));
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const s = new DotStuffer();
        const got = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]
          .map((p) => dec.decode(s.push(p))).join("") + dec.decode(s.end());
        assert.equal(got, want, `${JSON.stringify(text)} split at ${i}, ${j}`);
      }
    }
  }
});

Deno.test("storedMessage() reads the body in ranges after its prefix, again from the start each time", async () => {
  const body = new Uint8Array(3 * PIECE + 17).map((_, i) => i % 251);
  const store = ranged(body);
  const prefix = enc.encode("DKIM-Signature: x\r\n");
  const m = storedMessage(prefix, store);
  assert.equal(m.size, prefix.length + body.length);
  for (let round = 0; round < 2; round++) {
    const got = await all(m);
    assert.deepEqual(got.subarray(0, prefix.length), prefix);
    assert.deepEqual(got.subarray(prefix.length), body);
  }
  assert.deepEqual(store.reads, [PIECE, PIECE, PIECE, 17, PIECE, PIECE, PIECE, 17]);
  // A store that gives less than asked is read on from where it stopped.
  assert.deepEqual(await all(storedMessage(new Uint8Array(0), ranged(body, 1000))), body);
  assert.deepEqual(await readPrefix(storedMessage(prefix, store), 5), prefix.subarray(0, 5));
});

Deno.test("storedMessage() fails rather than loop or send short when the body shrank", async () => {
  const store = { size: 10, read: () => Promise.resolve(new Uint8Array(0)) };
  await assert.rejects(() => all(storedMessage(new Uint8Array(0), store)), /ended at 0 of 10/);
});

Deno.test("dkimSignatureField() signs a message read in pieces as signMessage signs it whole", async () => {
  const key = { selector: "s", privateKeyPem: generateDkimKey() };
  const header = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n";
  const body = "line  with   blanks \r\n.dot\r\n".repeat(PIECE / 8) + "\r\n\r\n";
  const bytes = enc.encode(header + body);
  const whole = dec.decode(await signMessage(bytes, "example.org", key));
  const field = dec.decode(
    await dkimSignatureField(
      storedMessage(new Uint8Array(0), ranged(bytes, 7919)),
      "example.org",
      key,
    ),
  );
  const bh = (s: string) => /bh=([^;]+);/.exec(s.replace(/\r\n\t/g, " "))![1];
  assert.equal(bh(field), bh(whole));
  const tag = (s: string, t: string) =>
    new RegExp(`${t}=([^;]+);`).exec(s.replace(/\r\n\t/g, " "))![1];
  assert.equal(tag(field, "h"), tag(whole, "h"));
  // A header block too long to be a header is refused, not signed.
  const endless = bytesMessage(enc.encode("X-A: " + "a".repeat(300 * 1024)));
  await assert.rejects(() => dkimSignatureField(endless, "example.org", key), /header block/);
});
