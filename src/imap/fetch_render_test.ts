import assert from "node:assert/strict";
import { parseMessage } from "../mime/mod.ts";
import {
  binarySection,
  concatPieces,
  imapString,
  partialSlice,
  type Piece,
  renderBodyStructure,
  renderEnvelope,
  resolvePart,
  sectionBytes,
  UNKNOWN_CTE,
} from "./fetch_render.ts";
import type { Section } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (pieces: Piece[]) => dec.decode(concatPieces(pieces));
const crlf = (lines: string[]) => enc.encode(lines.join("\r\n"));
const sec = (part: number[], specifier: Section["specifier"] = "", fields?: string[]) => ({
  part,
  specifier,
  ...(fields ? { fields } : {}),
});
const str = (b: Uint8Array | null) => b === null ? null : dec.decode(b);

function load(lines: string[]) {
  const bytes = crlf(lines);
  return { bytes, root: parseMessage(bytes) };
}

const NESTED = load([
  "From: a@example.org",
  "To: b@example.org",
  "Subject: nested",
  "X-Folded: first",
  "  second",
  "MIME-Version: 1.0",
  'Content-Type: multipart/mixed; boundary="outer"',
  "",
  "preamble",
  "--outer",
  "Content-Type: text/plain; charset=utf-8",
  "",
  "intro line",
  "--outer",
  "Content-Type: multipart/alternative; boundary=alt",
  "",
  "--alt",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: quoted-printable",
  "",
  "Hello =C3=A9",
  "--alt",
  "Content-Type: text/html; charset=utf-8",
  "",
  "<p>Hello</p>",
  "--alt--",
  "--outer",
  "Content-Type: message/rfc822",
  "Content-Description: forwarded",
  "",
  "From: c@example.org",
  "Subject: inner",
  "Content-Type: multipart/mixed; boundary=inner",
  "",
  "--inner",
  "Content-Type: text/plain",
  "",
  "inner text",
  "--inner",
  "Content-Type: text/plain; charset=us-ascii",
  "Content-Transfer-Encoding: base64",
  "",
  "aW5uZXIgbmVlZGxl",
  "--inner--",
  "--outer",
  'Content-Type: application/pdf; name="doc.pdf"',
  "Content-Transfer-Encoding: base64",
  'Content-Disposition: attachment; filename="doc.pdf"',
  "Content-Language: en, de",
  "",
  "JVBERi0xLjQK",
  "--outer--",
  "epilogue",
  "",
]);

Deno.test("imapString: NIL, quoted with escapes, literal for CR/LF and 8-bit", () => {
  assert.equal(imapString(null), "NIL");
  assert.equal(imapString(""), '""');
  assert.equal(imapString('a "b" \\c'), '"a \\"b\\" \\\\c"');
  assert.equal(text([imapString("a\r\nb")]), "{4}\r\na\r\nb");
  assert.equal(text([imapString("Grüße")]), "{7}\r\nGrüße");
});

Deno.test("ENVELOPE: groups, raw encoded words, missing fields, escaped name", () => {
  const { bytes, root } = load([
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)",
    'From: "Fred \\"The Man\\" Foo\\\\bar" <foobar@Blurdybloop.example>',
    "Subject: =?utf-8?q?Caf=C3=A9?=",
    "  afternoon",
    'To: mooch@owatagu.example, Friends: a@x.example, "B" <b@y.example>;, nodomain',
    'Cc: "hidden-recipients": ;',
    "Message-Id: <B27397-0100000@Blurdybloop.example>",
    "",
    "body",
  ]);
  const fred = '(("Fred \\"The Man\\" Foo\\\\bar" NIL "foobar" "Blurdybloop.example"))';
  assert.equal(
    text(renderEnvelope(root, bytes)),
    '("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "=?utf-8?q?Caf=C3=A9?=  afternoon" ' +
      `${fred} ${fred} ${fred} ` +
      '((NIL NIL "mooch" "owatagu.example")(NIL NIL "Friends" NIL)(NIL NIL "a" "x.example")' +
      '("B" NIL "b" "y.example")(NIL NIL NIL NIL)(NIL NIL "nodomain" "")) ' +
      '((NIL NIL "hidden-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL ' +
      '"<B27397-0100000@Blurdybloop.example>")',
  );
});

Deno.test("ENVELOPE: explicit sender/reply-to, empty reply-to falls back, nothing else", () => {
  const { bytes, root } = load([
    "From: a@x.example",
    "Sender: s@x.example",
    "Reply-To:",
    "In-Reply-To: <p@x>",
    "",
    "",
  ]);
  assert.equal(
    text(renderEnvelope(root, bytes)),
    '(NIL NIL ((NIL NIL "a" "x.example")) ((NIL NIL "s" "x.example")) ' +
      '((NIL NIL "a" "x.example")) NIL NIL NIL "<p@x>" NIL)',
  );
  const empty = load(["", "body"]);
  assert.equal(
    text(renderEnvelope(empty.root, empty.bytes)),
    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
  );
});

Deno.test("ENVELOPE: 8-bit subject goes out as a literal of the stored bytes", () => {
  const head = enc.encode("Subject: Gr");
  const bytes = new Uint8Array([...head, 0xfc, 0xdf, 0x65, 13, 10, 13, 10]); // Latin-1 "üße"
  const out = concatPieces(renderEnvelope(parseMessage(bytes), bytes));
  const expected = new Uint8Array([
    ...enc.encode("(NIL {5}\r\nGr"),
    0xfc,
    0xdf,
    0x65,
    ...enc.encode(" NIL NIL NIL NIL NIL NIL NIL NIL)"),
  ]);
  assert.deepEqual(out, expected);
  const utf8 = load(["Subject: Grüße", "", ""]);
  assert.match(text(renderEnvelope(utf8.root, utf8.bytes)), /^\(NIL \{7\}\r\nGrüße NIL/);
});

Deno.test("BODYSTRUCTURE / BODY of a plain text message with defaults", () => {
  const { bytes, root } = load(["From: a@b", "Subject: x", "", "Hello", "World", ""]);
  assert.equal(
    text(renderBodyStructure(root, bytes, true)),
    '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)',
  );
  assert.equal(
    text(renderBodyStructure(root, bytes, false)),
    '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2)',
  );
});

Deno.test("BODYSTRUCTURE: base64 attachment with disposition, id, description, md5, location", () => {
  const { bytes, root } = load([
    'Content-Type: image/png; name="a b.png"',
    "Content-Transfer-Encoding: base64",
    "Content-ID: <img1@x>",
    "Content-Description: =?utf-8?q?Bild?=",
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==",
    'Content-Disposition: attachment; filename="a b.png"; size=3',
    "Content-Location: http://x.example/a.png",
    "",
    "iVBO",
  ]);
  assert.equal(
    text(renderBodyStructure(root, bytes, true)),
    '("IMAGE" "PNG" ("NAME" "a b.png") "<img1@x>" "=?utf-8?q?Bild?=" "BASE64" 4 ' +
      '"Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "a b.png" "SIZE" "3")) NIL ' +
      '"http://x.example/a.png")',
  );
});

Deno.test("BODYSTRUCTURE: multipart/mixed with alternative, message/rfc822 and attachment", () => {
  const { bytes, root } = NESTED;
  const inner = '(NIL "inner" ((NIL NIL "c" "example.org")) ((NIL NIL "c" "example.org")) ' +
    '((NIL NIL "c" "example.org")) NIL NIL NIL NIL NIL)';
  assert.equal(
    text(renderBodyStructure(root, bytes, true)),
    '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)' +
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 12 1 NIL NIL NIL NIL)' +
      '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)' +
      ' "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)' +
      `("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 252 ${inner} ` +
      '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)' +
      '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "BASE64" 16 1 NIL NIL NIL NIL)' +
      ' "MIXED" ("BOUNDARY" "inner") NIL NIL NIL) 14 NIL NIL NIL NIL)' +
      '("APPLICATION" "PDF" ("NAME" "doc.pdf") NIL NIL "BASE64" 12 NIL ' +
      '("ATTACHMENT" ("FILENAME" "doc.pdf")) ("en" "de") NIL)' +
      ' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)',
  );
  assert.equal(
    text(renderBodyStructure(root, bytes, false)),
    '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1)' +
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 12 1)' +
      '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1) "ALTERNATIVE")' +
      `("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 252 ${inner} ` +
      '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)' +
      '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "BASE64" 16 1) "MIXED") 14)' +
      '("APPLICATION" "PDF" ("NAME" "doc.pdf") NIL NIL "BASE64" 12) "MIXED")',
  );
  // The size reported for the message/rfc822 part is exactly its BODY[3].
  assert.equal(sectionBytes(bytes, root, sec([3]))!.length, 252);
});

Deno.test("BODYSTRUCTURE: multipart without parts still renders a body", () => {
  const { bytes, root } = load(["Content-Type: multipart/mixed; boundary=x", "", "no parts", ""]);
  assert.equal(
    text(renderBodyStructure(root, bytes, false)),
    '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")',
  );
});

// Captured Delta Chat 2.57 messages (tests/fixtures/deltachat/README.md), CRLF as sent.
const DC_DIR = new URL("../../tests/fixtures/deltachat/", import.meta.url);

Deno.test("Delta Chat PGP/MIME multipart/encrypted: ENVELOPE, BODYSTRUCTURE, sections", () => {
  const bytes = Deno.readFileSync(new URL("09-text-alice-to-bob-1.eml", DC_DIR));
  const root = parseMessage(bytes);
  const boundary = "18eda797db478d26_88ec37f72f3d163c_9dd4744556f404a";
  const part1 = str(sectionBytes(bytes, root, sec([1])));
  const part2 = str(sectionBytes(bytes, root, sec([2])))!;
  assert.equal(part1, "Version: 1\r\n");
  assert.match(part2, /^-----BEGIN PGP MESSAGE-----\r\n[^]*-----END PGP MESSAGE-----\r\n$/);
  const lines2 = part2.split("\r\n").length - 1;
  assert.equal(
    text(renderBodyStructure(root, bytes, true)),
    '(("APPLICATION" "PGP-ENCRYPTED" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 NIL NIL NIL NIL)' +
      `("APPLICATION" "OCTET-STREAM" ("CHARSET" "utf-8") NIL NIL "7BIT" ${part2.length} ` +
      'NIL NIL NIL NIL) "ENCRYPTED" ' +
      `("PROTOCOL" "application/pgp-encrypted" "BOUNDARY" "${boundary}") NIL NIL NIL)`,
  );
  assert.ok(lines2 > 10);
  assert.equal(
    text(renderEnvelope(root, bytes)),
    '("Wed, 2 Dec 2026 04:19:50 +0000" "[...]" ((NIL NIL "3gu5ij1ef" "chat.test")) ' +
      '((NIL NIL "3gu5ij1ef" "chat.test")) ((NIL NIL "3gu5ij1ef" "chat.test")) ' +
      '((NIL NIL "hidden-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL ' +
      '"<def00c60-0e40-4516-9167-181ec850a065@localhost>")',
  );
  assert.equal(
    str(sectionBytes(bytes, root, sec([], "HEADER.FIELDS", ["CONTENT-TYPE", "CHAT-VERSION"]))),
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; \r\n` +
      `\tboundary="${boundary}"\r\nChat-Version: 1.0\r\n\r\n`,
  );
  assert.equal(
    str(sectionBytes(bytes, root, sec([2], "MIME"))),
    'Content-Type: application/octet-stream; charset="utf-8"\r\n' +
      "Content-Transfer-Encoding: 7bit\r\n\r\n",
  );
});

Deno.test("Delta Chat messages: every part size matches its BODY[n]", () => {
  for (const name of ["05-securejoin-alice-bob-2.eml", "21-file-alice-to-bob-1.eml"]) {
    const bytes = Deno.readFileSync(new URL(name, DC_DIR));
    const root = parseMessage(bytes);
    assert.equal(root.contentType.subtype, "encrypted");
    const bs = text(renderBodyStructure(root, bytes, true));
    root.children.forEach((c, i) => {
      const body = sectionBytes(bytes, root, sec([i + 1]))!;
      assert.equal(body.length, c.end - c.bodyStart);
      assert.ok(bs.includes(`"7BIT" ${body.length} `), `${name} part ${i + 1}`);
    });
  }
});

Deno.test("sections: whole, HEADER, TEXT, HEADER.FIELDS (.NOT)", () => {
  const { bytes, root } = NESTED;
  const all = dec.decode(bytes);
  const headerEnd = all.indexOf("\r\n\r\n") + 4;
  assert.equal(sectionBytes(bytes, root, sec([])), bytes);
  assert.equal(str(sectionBytes(bytes, root, sec([], "HEADER"))), all.slice(0, headerEnd));
  assert.equal(str(sectionBytes(bytes, root, sec([], "TEXT"))), all.slice(headerEnd));
  // Names match case-insensitively; original order and folding are kept.
  assert.equal(
    str(sectionBytes(bytes, root, sec([], "HEADER.FIELDS", ["X-FOLDED", "FROM", "BCC"]))),
    "From: a@example.org\r\nX-Folded: first\r\n  second\r\n\r\n",
  );
  assert.equal(
    str(sectionBytes(bytes, root, sec([], "HEADER.FIELDS", ["NONE"]))),
    "\r\n",
  );
  assert.equal(
    str(
      sectionBytes(
        bytes,
        root,
        sec([], "HEADER.FIELDS.NOT", ["X-FOLDED", "MIME-VERSION", "CONTENT-TYPE"]),
      ),
    ),
    "From: a@example.org\r\nTo: b@example.org\r\nSubject: nested\r\n\r\n",
  );
});

Deno.test("sections: part numbers, MIME, and HEADER/TEXT of an attached message", () => {
  const { bytes, root } = NESTED;
  const get = (s: Section) => str(sectionBytes(bytes, root, s));
  assert.equal(get(sec([1])), "intro line");
  assert.equal(get(sec([2, 1])), "Hello =C3=A9");
  assert.equal(get(sec([2, 2])), "<p>Hello</p>");
  assert.equal(get(sec([4])), "JVBERi0xLjQK");
  assert.equal(get(sec([1], "MIME")), "Content-Type: text/plain; charset=utf-8\r\n\r\n");
  assert.equal(
    get(sec([3], "MIME")),
    "Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n",
  );
  assert.equal(
    get(sec([3], "HEADER")),
    "From: c@example.org\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n",
  );
  assert.equal(get(sec([3], "HEADER.FIELDS", ["SUBJECT"])), "Subject: inner\r\n\r\n");
  assert.match(get(sec([3], "TEXT"))!, /^--inner\r\n[^]*\r\n--inner--$/);
  assert.match(get(sec([3]))!, /^From: c@example.org\r\n[^]*--inner--$/);
  assert.equal(get(sec([3, 1])), "inner text");
  assert.equal(get(sec([3, 2])), "aW5uZXIgbmVlZGxl");
  assert.equal(get(sec([3, 2], "MIME"))!.startsWith("Content-Type: text/plain; charset="), true);
  // Nonexistent parts and specifiers that do not apply.
  assert.equal(sectionBytes(bytes, root, sec([5])), null);
  assert.equal(sectionBytes(bytes, root, sec([1, 1])), null);
  assert.equal(sectionBytes(bytes, root, sec([2, 3])), null);
  assert.equal(sectionBytes(bytes, root, sec([3, 3])), null);
  assert.equal(sectionBytes(bytes, root, sec([0])), null);
  assert.equal(sectionBytes(bytes, root, sec([1], "HEADER")), null);
  assert.equal(sectionBytes(bytes, root, sec([2], "TEXT")), null);
  assert.equal(sectionBytes(bytes, root, sec([], "MIME")), null);
});

Deno.test("sections: a non-multipart message has part 1, its body", () => {
  const { bytes, root } = load(["Subject: s", "", "just text", ""]);
  assert.equal(str(sectionBytes(bytes, root, sec([1]))), "just text\r\n");
  assert.equal(str(sectionBytes(bytes, root, sec([1], "MIME"))), "Subject: s\r\n\r\n");
  assert.equal(sectionBytes(bytes, root, sec([2])), null);
  assert.equal(sectionBytes(bytes, root, sec([1, 1])), null);
  assert.equal(resolvePart(root, [1]), root);
});

Deno.test("sections: a top-level message/rfc822 message numbers into the attached one", () => {
  const { bytes, root } = load([
    "Content-Type: message/rfc822",
    "",
    "Subject: in",
    "",
    "inner body",
  ]);
  assert.equal(str(sectionBytes(bytes, root, sec([1]))), "Subject: in\r\n\r\ninner body");
  assert.equal(str(sectionBytes(bytes, root, sec([1], "HEADER"))), "Subject: in\r\n\r\n");
  assert.equal(str(sectionBytes(bytes, root, sec([1, 1]))), "inner body");
});

Deno.test("partialSlice: inside, over the end, at and past the end", () => {
  const data = enc.encode("0123456789");
  assert.equal(dec.decode(partialSlice(data, 2, 3)), "234");
  assert.equal(dec.decode(partialSlice(data, 8, 100)), "89");
  assert.equal(partialSlice(data, 10, 5).length, 0);
  assert.equal(partialSlice(data, 50, 5).length, 0);
  assert.equal(partialSlice(data, 0, 0).length, 0);
});

Deno.test("BINARY: decoded leaf content, raw containers, unknown encodings", () => {
  const { bytes, root } = NESTED;
  assert.equal(str(binarySection(bytes, root, [3, 2]) as Uint8Array), "inner needle");
  assert.equal(str(binarySection(bytes, root, [2, 1]) as Uint8Array), "Hello é");
  assert.equal(str(binarySection(bytes, root, [1]) as Uint8Array), "intro line");
  assert.deepEqual(binarySection(bytes, root, [4]), enc.encode("%PDF-1.4\n"));
  assert.equal(binarySection(bytes, root, []), bytes);
  assert.deepEqual(binarySection(bytes, root, [3]), sectionBytes(bytes, root, sec([3])));
  assert.equal(binarySection(bytes, root, [9]), null);
  const uu = load(["Content-Transfer-Encoding: x-uuencode", "", "begin 644 a", ""]);
  assert.equal(binarySection(uu.bytes, uu.root, [1]), UNKNOWN_CTE);
});

Deno.test("ENVELOPE, BODYSTRUCTURE and section ranges come from a stored structure alone", async () => {
  const { decodeStructure, encodeStructure } = await import("../mime/structure_codec.ts");
  const { sectionRange } = await import("./fetch_render.ts");
  const { bytes, root } = NESTED;
  const stored = decodeStructure(encodeStructure(root));
  assert.equal(text(renderEnvelope(stored)), text(renderEnvelope(root, bytes)));
  assert.equal(
    text(renderBodyStructure(stored, undefined, true)),
    text(renderBodyStructure(root, bytes, true)),
  );
  for (
    const s of [
      sec([]),
      sec([1]),
      sec([2, 1]),
      sec([3], "HEADER"),
      sec([3], "TEXT"),
      sec([3], "MIME"),
      sec([], "HEADER.FIELDS", ["subject", "x-folded"]),
      sec([3], "HEADER.FIELDS.NOT", ["subject"]),
    ]
  ) {
    const r = sectionRange(stored, s);
    const got = r === null ? null : "bytes" in r ? r.bytes : bytes.subarray(r.start, r.end);
    assert.deepEqual(str(got), str(sectionBytes(bytes, root, s)), JSON.stringify(s));
  }
});
