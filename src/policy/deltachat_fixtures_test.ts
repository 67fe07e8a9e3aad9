import assert from "node:assert/strict";
import { checkIncoming, checkOutgoing, createGate } from "./mod.ts";
import { decodeStructure, encodeStructure, parseMessage } from "../mime/mod.ts";

/** The messages the real Delta Chat core wrote (src/policy/testdata/generate_deltachat.ts). */
export async function deltaChatFixtures(): Promise<{ name: string; bytes: Uint8Array }[]> {
  const dir = new URL("./testdata/deltachat/", import.meta.url);
  const out: { name: string; bytes: Uint8Array }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".eml")) {
      out.push({ name: e.name, bytes: await Deno.readFile(new URL(e.name, dir)) });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

const fixtures = await deltaChatFixtures();

Deno.test("every message of the real Delta Chat core passes the gate, both ways, any split", () => {
  assert.ok(fixtures.length >= 12, `${fixtures.length} fixtures`);
  for (const { name, bytes } of fixtures) {
    const from = /^From: <([^>]+)>/m.exec(new TextDecoder().decode(bytes))![1];
    const input = { mailFrom: from, recipients: ["carol0001@[127.0.0.1]"], message: bytes };
    const out = checkOutgoing(input);
    assert.deepEqual([out.accept, out.accept && out.kind, out.ambiguities], [
      true,
      "encrypted",
      undefined,
    ], name);
    const inc = checkIncoming({ ...input, mailFrom: "" });
    assert.deepEqual([inc.accept, inc.accept && inc.kind], [true, "encrypted"], name);
    for (const size of [1, 13, 4096]) {
      const g = createGate({ direction: "outgoing", mailFrom: from, recipients: input.recipients });
      for (let i = 0; i < bytes.length; i += size) g.push(bytes.subarray(i, i + size));
      assert.equal(g.end().accept, true, `${name} in pieces of ${size}`);
    }
  }
});

Deno.test("the structure blob of a Delta Chat message decodes to the parsed tree", () => {
  for (const { name, bytes } of fixtures) {
    const root = parseMessage(bytes);
    const back = decodeStructure(encodeStructure(root));
    assert.deepEqual(
      back.children.map((c) => [c.start, c.end, c.contentType]),
      root.children.map((c) => [c.start, c.end, c.contentType]),
      name,
    );
  }
});
