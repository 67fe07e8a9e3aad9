import assert from "node:assert/strict";
import * as openpgp from "openpgp";
import { checkArmoredPayload } from "./armor_check.ts";
import { checkOpenpgpPacketStream } from "./openpgp_packets.ts";
import { deltaChatCorpus } from "../../tests/support/deltachat_corpus.ts";

const crlf = (s: string) => s.replace(/\r?\n/g, "\r\n");

function armorOf(eml: string): string {
  const text = crlf(eml);
  const a = text.indexOf("-----BEGIN PGP MESSAGE-----");
  const b = text.indexOf("-----END PGP MESSAGE-----", a);
  return text.slice(a, b + "-----END PGP MESSAGE-----".length) + "\r\n";
}

Deno.test("checkArmoredPayload() accepts every captured Delta Chat 2.57 message", () => {
  const corpus = deltaChatCorpus();
  assert.ok(corpus.length >= 20);
  for (const m of corpus) {
    const armor = armorOf(new TextDecoder().decode(m.bytes));
    assert.equal(checkArmoredPayload(armor, "outgoing"), true, m.file);
    assert.equal(checkArmoredPayload(armor, "incoming"), true, m.file);
  }
  // Both kinds the cores write: to keys (PKESK, tag 1) and to the QR secret (SKESK, tag 3).
  assert.ok(corpus.some((m) => m.packets[0] === 3));
  assert.ok(corpus.some((m) => m.packets.filter((t) => t === 1).length === 3));
});

const { privateKey, publicKey } = await openpgp.generateKey({
  type: "curve25519",
  userIDs: [{ email: "a@x.org" }],
});
const key = await openpgp.readKey({ armoredKey: publicKey });
const priv = await openpgp.readPrivateKey({ armoredKey: privateKey });
const text = await openpgp.createMessage({ text: "hello" });
const toKey = crlf(await openpgp.encrypt({ message: text, encryptionKeys: key }) as string);
const toPw = crlf(await openpgp.encrypt({ message: text, passwords: ["secret"] }) as string);
const signed = crlf(await openpgp.sign({ message: text, signingKeys: priv }) as string);

Deno.test("checkArmoredPayload() applies the packet and armor rules", async () => {
  assert.equal(checkArmoredPayload(toKey, "outgoing"), true);
  assert.equal(checkArmoredPayload(toPw, "outgoing"), true);
  assert.equal(checkArmoredPayload(signed, "outgoing"), false);
  const withVersion = toKey.replace(
    "-----BEGIN PGP MESSAGE-----\r\n",
    "-----BEGIN PGP MESSAGE-----\r\nVersion: 1\r\n",
  );
  assert.equal(checkArmoredPayload(withVersion, "outgoing"), false);
  assert.equal(checkArmoredPayload(withVersion, "incoming"), true);
  assert.equal(
    checkArmoredPayload(toKey.replace("-----BEGIN PGP MESSAGE-----\r\n", ""), "incoming"),
    false,
  );
  assert.equal(
    checkArmoredPayload(toKey.replace("-----END PGP MESSAGE-----", ""), "incoming"),
    false,
  );
  assert.equal(
    checkArmoredPayload(
      "-----BEGIN PGP MESSAGE-----\r\n\r\n!!notbase64!!\r\n-----END PGP MESSAGE-----\r\n",
      "incoming",
    ),
    false,
  );
  const { data } = await openpgp.unarmor(toKey);
  const bytes = data as Uint8Array;
  assert.equal(checkOpenpgpPacketStream(bytes), true);
  assert.equal(checkOpenpgpPacketStream(bytes.subarray(0, bytes.length - 1)), false);
  const extra = new Uint8Array([...bytes, 0xcb, 0x03, 0x62, 0x00, 0x00]);
  assert.equal(checkOpenpgpPacketStream(extra), false);
});

Deno.test("checkOpenpgpPacketStream() handles legacy headers and rejects other tags", () => {
  // Legacy SEIPD (tag 18 cannot be legacy: tags > 15), so legacy PKESK then new-format SEIPD.
  const legacyPkesk = [0x84, 0x02, 0x03, 0x00];
  const seipd = [0xd2, 0x02, 0x01, 0x00];
  assert.equal(checkOpenpgpPacketStream(new Uint8Array([...legacyPkesk, ...seipd])), true);
  assert.equal(checkOpenpgpPacketStream(new Uint8Array([0xd4, 0x01, 0x00])), false); // AEAD tag 20
  assert.equal(checkOpenpgpPacketStream(new Uint8Array([0xcb, 0x01, 0x00])), false); // literal
  assert.equal(checkOpenpgpPacketStream(new Uint8Array([0x87, 0x00])), false); // indeterminate
  assert.equal(checkOpenpgpPacketStream(new Uint8Array([0x41])), false);
  // Partial lengths: one 2-byte chunk then a final length of 1.
  assert.equal(
    checkOpenpgpPacketStream(new Uint8Array([0xd2, 0xe1, 0x00, 0x00, 0x01, 0x00])),
    true,
  );
});
