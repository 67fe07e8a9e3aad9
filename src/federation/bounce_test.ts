import assert from "node:assert/strict";
import { buildBounce } from "./bounce.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const original = enc.encode(
  "From: <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: [...]\r\nMessage-ID: <m1@a.test>\r\n" +
    "Content-Type: multipart/encrypted; boundary=x\r\n\r\n--x\r\nSECRET-PGP-BODY\r\n--x--\r\n",
);

function bounce(overrides: Partial<Parameters<typeof buildBounce>[0]> = {}): string {
  return dec.decode(buildBounce({
    domain: "a.test",
    hostname: "mx.a.test",
    sender: "alice@a.test",
    original,
    failed: [
      { recipient: "bob@b.test", status: "5.1.1", reason: "550 5.1.1 User unknown (from b.test)" },
      {
        recipient: "carol@b.test",
        status: "4.4.7",
        reason: "Gave up after 3 attempts:\r\nrefused",
      },
    ],
    arrivedAt: Date.UTC(2026, 10, 23, 8, 0, 0),
    now: Date.UTC(2026, 10, 23, 9, 30, 0),
    ...overrides,
  }));
}

Deno.test("buildBounce() is a DSN from MAILER-DAEMON that passes the inbound policy", () => {
  const text = bounce();
  const [head] = text.split("\r\n\r\n");
  assert.match(head, /^From: Mail Delivery System <MAILER-DAEMON@a\.test>$/m);
  assert.match(head, /^To: <alice@a\.test>$/m);
  assert.match(head, /^Auto-Submitted: auto-replied$/m);
  assert.match(head, /^Content-Type: multipart\/report; report-type=delivery-status; /m);
  assert.match(head, /^Date: Mon, 23 Nov 2026 09:30:00 \+0000$/m);
  assert.match(head, /^Message-ID: <[0-9a-f-]+@a\.test>$/m);
});

Deno.test("buildBounce() dates the arrival when the message was accepted, not now", () => {
  const text = bounce();
  assert.match(text, /^Arrival-Date: Mon, 23 Nov 2026 08:00:00 \+0000$/m);
  assert.match(text, /^Reporting-MTA: dns; mx\.a\.test$/m);
});

Deno.test("buildBounce() reports each recipient with its status on one line", () => {
  const text = bounce();
  const fields = text.split("Content-Type: message/delivery-status")[1].split("--bounce-")[0];
  assert.match(
    fields,
    /Final-Recipient: rfc822; bob@b\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nDiagnostic-Code: smtp; 550 5\.1\.1 User unknown \(from b\.test\)\r\n/,
  );
  // A reason with line breaks cannot start a new header field.
  assert.match(
    fields,
    /Status: 4\.4\.7\r\nDiagnostic-Code: smtp; Gave up after 3 attempts: refused\r\n/,
  );
  assert.match(text, /^<carol@b\.test>: Gave up after 3 attempts: refused$/m);
});

Deno.test("buildBounce() attaches the original header block, never the body", () => {
  const text = bounce();
  const attached = text.split("Content-Type: text/rfc822-headers\r\n\r\n")[1];
  assert.match(attached, /^From: <alice@a\.test>\r\n/);
  assert.match(attached, /Message-ID: <m1@a\.test>/);
  assert.doesNotMatch(text, /SECRET-PGP-BODY/);
  assert.match(text, /\r\n--bounce-[0-9a-f-]+--\r\n$/);
});

Deno.test("buildBounce() uses a domain literal's address in the Message-ID", () => {
  const text = bounce({ domain: "[127.0.0.1]" });
  assert.match(text, /^From: Mail Delivery System <MAILER-DAEMON@\[127\.0\.0\.1\]>$/m);
  assert.match(text, /^Message-ID: <[0-9a-f-]+@127\.0\.0\.1>$/m);
});
