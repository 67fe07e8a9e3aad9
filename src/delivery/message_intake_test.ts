import assert from "node:assert/strict";
import { byteText } from "../mime/mod.ts";
import type { BodySpool, SpooledBody } from "../store/types.ts";
import { MessageIntake, SLICE } from "./message_intake.ts";

/** A spool that keeps copies of what it was given. */
class MemorySpool implements BodySpool {
  chunks: Uint8Array[] = [];
  get size() {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  write(chunk: Uint8Array) {
    this.chunks.push(chunk.slice());
    return Promise.resolve();
  }
  finish(): Promise<SpooledBody> {
    return Promise.reject(new Error("not used here"));
  }
  discard() {
    return Promise.resolve();
  }
}

Deno.test("MessageIntake: readers get slices of the chunk, with the matching slice of its text", async () => {
  const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n";
  const bytes = new TextEncoder().encode(line.repeat(Math.ceil((SLICE * 2.5) / line.length)));
  const text = byteText(bytes)!;
  for (const given of [text, undefined]) {
    const got: { bytes: Uint8Array; text?: string }[] = [];
    const spool = new MemorySpool();
    const intake = new MessageIntake(spool, [{
      push: (b, t) => void got.push({ bytes: b.slice(), text: t }),
    }]);
    await intake.write(bytes, given);
    assert.equal(got.length, 3);
    assert.deepEqual(new Uint8Array(got.flatMap((g) => [...g.bytes])), bytes);
    for (const g of got) {
      assert.ok(g.bytes.length <= SLICE);
      assert.equal(g.text, given === undefined ? undefined : byteText(g.bytes));
    }
    assert.equal(spool.size, bytes.length);
    await intake.discard();
  }
});
