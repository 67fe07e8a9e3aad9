import assert from "node:assert/strict";
import { checkIncoming, checkOutgoing, createGate, type GateResult } from "./mod.ts";
import {
  armor,
  concat,
  encrypted,
  ONE_READING_CASES,
  packet,
  report,
  secureJoin,
} from "./testdata/one_reading_cases.ts";

const enc = new TextEncoder();
const SELF = "alice0001@relay.test";
const OTHER = "bobby0001@relay.test";
const TO = "carol0001@relay.test";

/** The reply code the edges give for a verdict (src/delivery/service.ts). */
function code(v: GateResult): number {
  if (v.accept) return 250;
  return v.reason === "not_encrypted" ? 523 : 500;
}

function check(direction: "outgoing" | "incoming", message: string, mailFrom = SELF) {
  const input = { mailFrom, recipients: [TO], message: enc.encode(message) };
  return direction === "outgoing" ? checkOutgoing(input) : checkIncoming(input);
}

Deno.test("gate: every hole of issue 15 gets the reference's reply", async (t) => {
  for (const c of ONE_READING_CASES) {
    await t.step(`item ${c.item}: ${c.name}`, () => {
      const v = check(c.direction, c.build({ self: SELF, other: OTHER, to: TO }));
      assert.equal(code(v), c.expect.code, JSON.stringify(v));
    });
  }
});

Deno.test("gate: the shapes that pass, in both directions", () => {
  assert.equal(check("outgoing", encrypted(SELF, TO)).accept, true);
  assert.equal(check("incoming", encrypted(SELF, TO)).accept, true);
  assert.equal(check("outgoing", secureJoin(SELF, TO)).accept, true);
  assert.equal(
    check("incoming", secureJoin(SELF, TO, { header: "Secure-Join: vg-request" })).accept,
    true,
  );
  const md = check("incoming", report("MAILER-DAEMON@remote.test", TO), "");
  assert.deepEqual([md.accept, md.accept && md.kind, md.resetSender], [
    true,
    "mailer_daemon",
    true,
  ]);
  assert.equal(check("outgoing", report("mailer-daemon@relay.test", TO)).accept, false);
});

Deno.test("gate: the armor and packet rules of filtermail", () => {
  const withPayload = (payload: string) => check("outgoing", encrypted(SELF, TO, { payload }));
  const pkesk = packet(1, 20), skesk = packet(3, 20), seipd = packet(18, 40);
  assert.equal(withPayload(armor(concat(skesk, seipd))).accept, true);
  assert.equal(withPayload(armor(concat(pkesk, skesk, seipd))).accept, true);
  assert.equal(withPayload(armor(concat(pkesk, seipd, pkesk))).accept, false); // data after SEIPD
  assert.equal(withPayload(armor(concat(pkesk, packet(20, 40)))).accept, false); // AEAD
  assert.equal(withPayload(armor(concat(pkesk, packet(11, 40)))).accept, false); // literal
  assert.equal(withPayload(armor(pkesk)).accept, false); // no SEIPD
  const good = armor(concat(pkesk, seipd));
  const version = good.replace("MESSAGE-----\r\n", "MESSAGE-----\r\nVersion: 1\r\n");
  assert.equal(withPayload(version).accept, false);
  assert.equal(
    check("incoming", encrypted(SELF, TO, { payload: version })).accept,
    true,
    "incoming drops a Version: armor header",
  );
  assert.equal(withPayload(good.replace("\r\n\r\n", "\r\nComment: x\r\n\r\n")).accept, false);
  assert.equal(
    withPayload(good.replace(/\r\n-----END/, "\r\nnot base64\r\n-----END")).accept,
    true,
    "text after the CRC line is ignored, as filtermail does",
  );
  assert.equal(withPayload(good.replace("-----END PGP MESSAGE-----", "")).accept, false);
  assert.equal(
    withPayload(good.replace("-----BEGIN PGP MESSAGE-----", "-----BEGIN PGP MESSAGE----- ")).accept,
    false,
  );
  const unpadded = armor(concat(pkesk, packet(18, 42))); // 66 bytes: base64 without padding
  assert.equal(withPayload(unpadded.replace(/^=.*\r\n/m, "")).accept, true, "no CRC, no padding");
  assert.equal(withPayload(good.replace(/^=.*\r\n/m, "")).accept, false, "padding without CRC");
  // Delta Chat's payload is 7bit; the same payload base64-encoded decodes to the same armor.
  const b64 = btoa(good).replace(/.{1,76}/g, (l) => l + "\r\n");
  const asB64 = encrypted(SELF, TO, {
    parts: [
      "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n",
      "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64,
    ],
  });
  assert.equal(check("outgoing", asB64).accept, true);
  assert.equal(
    check("outgoing", asB64.replace(b64.slice(0, 4), b64.slice(0, 3) + "!")).accept,
    false,
  );
});

Deno.test("gate: streaming gives the same verdict for any split of the message", () => {
  const messages = [
    encrypted(SELF, TO),
    secureJoin(SELF, TO),
    ...ONE_READING_CASES.map((c) => c.build({ self: SELF, other: OTHER, to: TO })),
  ];
  for (const m of messages) {
    const bytes = enc.encode(m);
    const whole = check("outgoing", m);
    for (const size of [1, 2, 3, 7, 64, 1000]) {
      const g = createGate({ direction: "outgoing", mailFrom: SELF, recipients: [TO] });
      for (let i = 0; i < bytes.length; i += size) g.push(bytes.subarray(i, i + size));
      const v = g.end();
      assert.equal(code(v), code(whole), `piece size ${size}`);
      assert.equal(g.structure().end, bytes.length);
    }
  }
});

Deno.test("gate: a sender ambiguity is never lost in a flood of other ones", () => {
  const junk = Array.from({ length: 100 }, (_, i) => `junk line ${i}`);
  const m = encrypted(SELF, TO, { extra: [...junk, `From : <${OTHER}>`, `From: <${SELF}>`] });
  const v = check("incoming", m);
  assert.equal(v.accept, false);
  assert.ok(v.senderAmbiguous, "senderAmbiguous is set");
});
