// The holes of issue 15 (items 1–3) as fixed cases, shared by the gate's unit test and the
// end-to-end test over SMTP: each message, and the reply the reference relay gives (or would give
// if it read the message as tern's other readers do). Bytes are built here, nothing is read from
// disk, so the cases need nothing but this file.

/** CRC-24 of OpenPGP armor (RFC 9580 §6.1). */
function crc24(data: Uint8Array): number {
  let crc = 0xb704ce;
  for (const b of data) {
    crc ^= b << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** A new-format packet with the given tag and a body of `length` zero bytes. */
export function packet(tag: number, length: number): Uint8Array {
  if (length >= 192) throw new Error("test packets are short");
  const p = new Uint8Array(2 + length);
  p[0] = 0xc0 | tag;
  p[1] = length;
  return p;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** ASCII armor as rPGP writes it: blank line, 64-column base64, CRC line, CRLF. */
export function armor(packets: Uint8Array): string {
  const c = crc24(packets);
  const lines = base64(packets).replace(/.{1,64}/g, (l) => l + "\r\n");
  const crc = base64(new Uint8Array([c >> 16, (c >> 8) & 0xff, c & 0xff]));
  return `-----BEGIN PGP MESSAGE-----\r\n\r\n${lines}=${crc}\r\n-----END PGP MESSAGE-----\r\n`;
}

/** PKESK, PKESK, SEIPD: the packet shape of a Delta Chat 1:1 message. */
export const PAYLOAD = armor(concat(packet(1, 60), packet(1, 60), packet(18, 120)));

const crlf = (s: string) => s.replace(/\r?\n/g, "\r\n");

export function headers(from: string, to: string, extra: string[]): string {
  return [
    ...extra.filter((h) => /^from\s*:/i.test(h)),
    ...(extra.some((h) => /^from\s*:/i.test(h)) ? [] : [`From: <${from}>`]),
    `To: <${to}>`,
    "Subject: [...]",
    "Date: Mon, 23 Nov 2026 07:00:00 +0000",
    "Message-ID: <c0ffee@localhost>",
    "MIME-Version: 1.0",
    ...extra.filter((h) => !/^from\s*:/i.test(h)),
  ].join("\r\n");
}

export const CONTROL = 'Content-Type: application/pgp-encrypted; charset="utf-8"\r\n' +
  "Content-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n";
export const DATA = 'Content-Type: application/octet-stream; charset="utf-8"\r\n' +
  "Content-Transfer-Encoding: 7bit\r\n\r\n";

/** PGP/MIME as Delta Chat writes it, with hooks to bend each piece. */
export function encrypted(
  from: string,
  to: string,
  o: {
    extra?: string[];
    contentType?: string;
    boundary?: string;
    preamble?: string;
    epilogue?: string;
    parts?: string[];
    payload?: string;
  } = {},
): string {
  const b = o.boundary ?? "18ea8807fd3c06d8_e7262a8cf62d930d";
  const ct = o.contentType ??
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n\tboundary="${b}"`;
  const parts = o.parts ?? [CONTROL, DATA + (o.payload ?? PAYLOAD)];
  return headers(from, to, [ct, ...(o.extra ?? [])]) + "\r\n\r\n" + (o.preamble ?? "\r\n") +
    parts.map((p) => `--${b}\r\n${p}\r\n`).join("") + `--${b}--\r\n` + (o.epilogue ?? "");
}

/** The cleartext first Secure-Join step. */
export function secureJoin(
  from: string,
  to: string,
  o: { header?: string; body?: string; preamble?: string; boundary?: string } = {},
): string {
  const b = o.boundary ?? "sj-boundary";
  return headers(from, to, [
    o.header ?? "Secure-Join: vc-request",
    "Secure-Join-Invitenumber: abcdefghijkl",
    `Content-Type: multipart/mixed; boundary="${b}"`,
  ]) + `\r\n\r\n${o.preamble ?? ""}--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    `${o.body ?? "Secure-Join: vc-request"}\r\n--${b}--\r\n`;
}

export function report(from: string, to: string, extra: string[] = []): string {
  const b = "bounce-b";
  return crlf(
    [
      ...extra,
      ...(extra.some((h) => /^from\s*:/i.test(h)) ? [] : [`From: Mail Delivery System <${from}>`]),
      `To: <${to}>`,
      "Subject: Undelivered Mail Returned to Sender",
      "Auto-Submitted: auto-replied",
      "MIME-Version: 1.0",
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
      "",
      "This is a MIME-encapsulated message.",
      "",
      `--${b}`,
      "Content-Type: text/plain",
      "",
      "Your message could not be delivered.",
      `--${b}`,
      "Content-Type: message/delivery-status",
      "",
      "Reporting-MTA: dns; example.net",
      "",
      `--${b}--`,
      "",
    ].join("\n"),
  );
}

export type Direction = "outgoing" | "incoming";

/** What the reference relay answers (the SMTP reply code, and the start of its text). */
export interface Expected {
  code: 250 | 500 | 523;
  text?: RegExp;
}

export interface Case {
  name: string;
  /** Issue 15 item this case belongs to. */
  item: 1 | 2 | 3;
  direction: Direction;
  /**
   * Builds the message. `self` is the sender's address (the logged-in user outgoing, a remote
   * sender incoming), `other` a local user the message may try to pose as, `to` the recipient.
   */
  build(a: { self: string; other: string; to: string }): string;
  expect: Expected;
}

const NOT_ENCRYPTED: Expected = {
  code: 523,
  text: /^523 Encryption Needed: Invalid Unencrypted Mail$/,
};
const INVALID_FROM: Expected = { code: 500, text: /Invalid FROM/ };
const OK: Expected = { code: 250 };

export const ONE_READING_CASES: Case[] = [
  // Item 1: whitespace before a header colon.
  {
    name: '"From :" then From: a cleartext message posing as a local user',
    item: 1,
    direction: "incoming",
    build: ({ self, other, to }) =>
      headers(self, to, [`From : <${self}>`, `From: <${other}>`, "Content-Type: text/plain"]) +
      "\r\n\r\nHello in cleartext\r\n",
    expect: NOT_ENCRYPTED,
  },
  {
    name: '"Content-Type :" multipart/encrypted with cleartext before the first delimiter',
    item: 1,
    direction: "incoming",
    build: ({ self, to }) =>
      encrypted(self, to, {
        contentType: 'Content-Type : multipart/encrypted; boundary="BB"',
        boundary: "BB",
        preamble: "Hello in cleartext\r\n",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: '"Content-Type :" multipart/encrypted sent in cleartext on submission',
    item: 1,
    direction: "outgoing",
    build: ({ self, to }) =>
      encrypted(self, to, {
        contentType: 'Content-Type : multipart/encrypted; boundary="BB"',
        boundary: "BB",
        preamble: "Hello in cleartext\r\n",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: 'submission "From : self" then "From: other": sending as another local user',
    item: 1,
    direction: "outgoing",
    build: ({ self, other, to }) =>
      encrypted(self, to, { extra: [`From : <${self}>`, `From: <${other}>`] }),
    expect: { code: 500, text: /Invalid FROM <[^>]+> for </ },
  },
  {
    name: 'submission "From: self" then "From : other"',
    item: 1,
    direction: "outgoing",
    build: ({ self, other, to }) =>
      encrypted(self, to, { extra: [`From: <${self}>`, `From : <${other}>`] }),
    expect: INVALID_FROM,
  },
  {
    name: "submission with two From fields (Delta Chat shows the last)",
    item: 1,
    direction: "outgoing",
    build: ({ self, other, to }) =>
      encrypted(self, to, { extra: [`From: <${self}>`, `From: <${other}>`] }),
    expect: INVALID_FROM,
  },
  {
    name: 'mailer-daemon exception via "From : <mailer-daemon@…>"',
    item: 1,
    direction: "incoming",
    build: ({ self, other, to }) =>
      report(self, to, [
        `From : <mailer-daemon@${self.split("@")[1]}>`,
        `From: <${other}>`,
      ]),
    expect: NOT_ENCRYPTED,
  },
  // Item 2: boundaries.
  {
    name: "a line that only begins with the boundary opens a cleartext part (encrypted)",
    item: 2,
    direction: "incoming",
    build: ({ self, to }) =>
      encrypted(self, to, {
        boundary: "BB",
        preamble: "--BBx\r\nContent-Type: text/plain\r\n\r\nHello in cleartext\r\n",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: "a line that only begins with the boundary opens a cleartext part (Secure-Join)",
    item: 2,
    direction: "outgoing",
    build: ({ self, to }) =>
      secureJoin(self, to, {
        boundary: "SJ",
        preamble: "--SJx\r\nContent-Type: text/plain\r\n\r\nHello in cleartext\r\n",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: "two boundary parameters (mailparse takes the last)",
    item: 2,
    direction: "incoming",
    build: ({ self, to }) =>
      encrypted(self, to, {
        boundary: "AA",
        contentType: 'Content-Type: multipart/encrypted; boundary="AA"; boundary="BB"',
        preamble: "--BB\r\nContent-Type: text/plain\r\n\r\nHello in cleartext\r\n--BB--\r\n",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: 'boundary="BB;x" (mailparse splits at the ";")',
    item: 2,
    direction: "outgoing",
    build: ({ self, to }) =>
      encrypted(self, to, {
        boundary: "BB;x",
        contentType: 'Content-Type: multipart/encrypted; boundary="BB;x"',
        preamble: '--"BB\r\nContent-Type: text/plain\r\n\r\nHello in cleartext\r\n--"BB--\r\n',
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: "text in the epilogue of multipart/encrypted",
    item: 2,
    direction: "incoming",
    build: ({ self, to }) => encrypted(self, to, { epilogue: "Hello in cleartext\r\n" }),
    expect: NOT_ENCRYPTED,
  },
  // Item 3: smaller differences from the reference filter.
  {
    name: "a comment in the Content-Type",
    item: 3,
    direction: "outgoing",
    build: ({ self, to }) =>
      encrypted(self, to, {
        boundary: "BB",
        contentType: "Content-Type: multipart/encrypted (pgp); boundary=BB",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: '"multipart/ encrypted"',
    item: 3,
    direction: "incoming",
    build: ({ self, to }) =>
      encrypted(self, to, {
        boundary: "BB",
        contentType: "Content-Type: multipart/ encrypted; boundary=BB",
      }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: "a folded Secure-Join header",
    item: 3,
    direction: "outgoing",
    build: ({ self, to }) => secureJoin(self, to, { header: "Secure-Join:\r\n vc-request" }),
    expect: NOT_ENCRYPTED,
  },
  {
    name: "an Autocrypt Setup subject padded with spaces",
    item: 3,
    direction: "outgoing",
    build: ({ self }) =>
      headers(self, self, [
        "Subject: Autocrypt Setup Message  ",
        'Content-Type: multipart/mixed; boundary="asm"',
      ]).replace("Subject: [...]\r\n", "") +
      "\r\n\r\n--asm\r\nContent-Type: text/plain\r\n\r\nsetup\r\n--asm--\r\n",
    expect: NOT_ENCRYPTED,
  },
  {
    name: "a source-routed From on submission",
    item: 3,
    direction: "outgoing",
    build: ({ self, to }) => encrypted(self, to, { extra: [`From: <@relay.example:${self}>`] }),
    expect: INVALID_FROM,
  },
  {
    name: "multipart/encrypted with only the control part (the reference accepts)",
    item: 3,
    direction: "outgoing",
    build: ({ self, to }) => encrypted(self, to, { parts: [CONTROL] }),
    expect: OK,
  },
  {
    name: "an encoded-word Secure-Join (the reference accepts)",
    item: 3,
    direction: "outgoing",
    build: ({ self, to }) =>
      secureJoin(self, to, { header: "Secure-Join: =?utf-8?q?vc-request?=" }),
    expect: OK,
  },
  {
    name: "incoming encrypted mail without From (the reference refuses: Invalid FROM header)",
    item: 3,
    direction: "incoming",
    build: ({ self, to }) => encrypted(self, to).replace(/^From: <[^>]*>\r\n/m, ""),
    expect: { code: 500, text: /Invalid FROM header: $/ },
  },
];
