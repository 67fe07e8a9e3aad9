import assert from "node:assert/strict";
import { MAX_MIME_DEPTH, parseMessage } from "./parse_message.ts";
import type { MimePart } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const crlf = (s: string) => s.replace(/\r?\n/g, "\r\n");

/** A readable digest of a part tree: type, header and body slices, line count. */
interface Shape {
  type: string;
  header?: string;
  body?: string;
  lines?: number;
  children?: Shape[];
  message?: Shape;
}

function shape(p: MimePart, b: Uint8Array, withHeader: boolean): Shape {
  const s: Shape = {
    type: `${p.contentType.type}/${p.contentType.subtype}`,
    body: dec.decode(b.subarray(p.bodyStart, p.end)),
    lines: p.bodyLines,
  };
  if (withHeader) s.header = dec.decode(b.subarray(p.start, p.headerEnd));
  if (p.children.length) s.children = p.children.map((c) => shape(c, b, withHeader));
  if (p.message) s.message = shape(p.message, b, withHeader);
  return s;
}

const cases: { name: string; input: string; expect: Shape; headers?: boolean }[] = [
  {
    name: "single part with default type",
    input: "Subject: hi\n\nhello\nworld\n",
    expect: { type: "text/plain", header: "Subject: hi\n\n", body: "hello\nworld\n", lines: 2 },
    headers: true,
  },
  {
    name: "no blank line: everything is header",
    input: "Subject: hi\nFrom: a@b",
    expect: { type: "text/plain", header: "Subject: hi\nFrom: a@b", body: "", lines: 0 },
    headers: true,
  },
  {
    name: "preamble, epilogue and the CRLF before each boundary excluded",
    input: crlf(
      "Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b\n\none\n--b\n" +
        "Content-Type: text/html\n\n<p>two</p>\n\n--b--\nepilogue\n",
    ),
    expect: {
      type: "multipart/mixed",
      body: crlf(
        "preamble\n--b\n\none\n--b\nContent-Type: text/html\n\n<p>two</p>\n\n--b--\nepilogue\n",
      ),
      lines: 11,
      children: [
        { type: "text/plain", body: "one", lines: 1 },
        { type: "text/html", body: "<p>two</p>\r\n", lines: 1 },
      ],
    },
  },
  {
    name: "nested multipart ends at the outer boundary when its close is missing",
    input: "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n" +
      "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\nplain\n--inner\n" +
      "Content-Type: text/html\n\nhtml\n--outer\nContent-Type: image/png\n\nPNG\n--outer--\n",
    expect: {
      type: "multipart/mixed",
      body: "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\n\nplain\n" +
        "--inner\nContent-Type: text/html\n\nhtml\n--outer\nContent-Type: image/png\n\nPNG\n--outer--\n",
      lines: 15,
      children: [
        {
          type: "multipart/alternative",
          body: "--inner\n\nplain\n--inner\nContent-Type: text/html\n\nhtml",
          lines: 7,
          children: [
            { type: "text/plain", body: "plain", lines: 1 },
            { type: "text/html", body: "html", lines: 1 },
          ],
        },
        { type: "image/png", body: "PNG", lines: 1 },
      ],
    },
  },
  {
    name: "missing final boundary ends the last part at the end of data",
    input: "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nlast line without break",
    expect: {
      type: "multipart/mixed",
      body: "--b\n\nlast line without break",
      lines: 3,
      children: [{ type: "text/plain", body: "last line without break", lines: 1 }],
    },
  },
  {
    name: "a boundary that is a prefix of another does not match it",
    input: "Content-Type: multipart/mixed; boundary=abc\n\n--abc\n" +
      "Content-Type: multipart/mixed; boundary=abcd\n\n--abcd\n\nx\n--abcd--\n--abc--\n",
    expect: {
      type: "multipart/mixed",
      body:
        "--abc\nContent-Type: multipart/mixed; boundary=abcd\n\n--abcd\n\nx\n--abcd--\n--abc--\n",
      lines: 8,
      children: [{
        type: "multipart/mixed",
        body: "--abcd\n\nx\n--abcd--",
        lines: 4,
        children: [{ type: "text/plain", body: "x", lines: 1 }],
      }],
    },
  },
  {
    name: "boundary lines may carry trailing blanks; other suffixes are content",
    input: "Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\n--bx\n--b--  \n",
    expect: {
      type: "multipart/mixed",
      body: "--b \t\n\n--bx\n--b--  \n",
      lines: 4,
      children: [{ type: "text/plain", body: "--bx", lines: 1 }],
    },
  },
  {
    name: "message/rfc822 attachment is parsed as an encapsulated message",
    input: crlf(
      'Content-Type: multipart/mixed; boundary="=_x"\n\n--=_x\n' +
        "Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/alternative;\n" +
        " boundary=y\n\n--y\n\na\n--y--\n\n--=_x--\n",
    ),
    expect: {
      type: "multipart/mixed",
      body: crlf(
        "--=_x\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/alternative;\n" +
          " boundary=y\n\n--y\n\na\n--y--\n\n--=_x--\n",
      ),
      lines: 13,
      children: [{
        type: "message/rfc822",
        body: crlf(
          "Subject: inner\nContent-Type: multipart/alternative;\n boundary=y\n\n--y\n\na\n--y--\n",
        ),
        lines: 8,
        message: {
          type: "multipart/alternative",
          body: crlf("--y\n\na\n--y--\n"),
          lines: 4,
          children: [{ type: "text/plain", body: "a", lines: 1 }],
        },
      }],
    },
  },
  {
    name: "multipart/digest children default to message/rfc822",
    input: "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n",
    expect: {
      type: "multipart/digest",
      body: "--d\n\nSubject: one\n\nbody\n--d--\n",
      lines: 6,
      children: [{
        type: "message/rfc822",
        body: "Subject: one\n\nbody",
        lines: 3,
        message: { type: "text/plain", body: "body", lines: 1 },
      }],
    },
  },
  {
    name: "a part cut off by a boundary inside its header is empty",
    input:
      "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b\n\nok\n--b--",
    expect: {
      type: "multipart/mixed",
      body: "--b\nContent-Type: text/html\n--b\n\nok\n--b--",
      lines: 6,
      children: [
        { type: "text/html", body: "", lines: 0 },
        { type: "text/plain", body: "ok", lines: 1 },
      ],
    },
  },
  {
    name: "multipart without boundary is a leaf",
    input: "Content-Type: multipart/mixed\n\n--b\n\nx\n",
    expect: { type: "multipart/mixed", body: "--b\n\nx\n", lines: 3 },
  },
  {
    name: "malformed content type falls back to text/plain",
    input: "Content-Type: garbage\n\nx",
    expect: { type: "text/plain", body: "x", lines: 1 },
  },
  {
    name: "base64 message/rfc822 is not parsed inside",
    input: "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n",
    expect: { type: "message/rfc822", body: "U3ViamVjdDogeA==\n", lines: 1 },
  },
];

Deno.test("parseMessage() builds the part tree with exact offsets", async (t) => {
  for (const c of cases) {
    await t.step(c.name, () => {
      const bytes = enc.encode(c.input);
      assert.deepEqual(shape(parseMessage(bytes), bytes, c.headers ?? false), c.expect);
    });
  }
});

Deno.test("parseMessage() fills the MIME metadata fields", () => {
  const bytes = enc.encode(crlf(
    'content-type: TEXT/Plain; CHARSET="UTF-8"; format=flowed (comment)\n' +
      "Content-Transfer-Encoding: Quoted-Printable\nContent-ID: <id@x>\n" +
      "Content-Description: a =?utf-8?q?t=C3=A9st?=\nContent-Disposition: attachment;\n" +
      " filename*0*=utf-8''%C3%A9t%C3%A9; filename*1=\".txt\"\nContent-Language: en, de\n" +
      "Content-Location: http://x/y\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nbody",
  ));
  const p = parseMessage(bytes);
  assert.deepEqual(p.contentType, {
    type: "text",
    subtype: "plain",
    params: { charset: "UTF-8", format: "flowed" },
  });
  assert.equal(p.contentTransferEncoding, "quoted-printable");
  assert.equal(p.contentId, "<id@x>");
  assert.equal(p.contentDescription, "a =?utf-8?q?t=C3=A9st?=");
  assert.deepEqual(p.contentDisposition, { value: "attachment", params: { filename: "été.txt" } });
  assert.deepEqual(p.contentLanguage, ["en", "de"]);
  assert.equal(p.contentLocation, "http://x/y");
  assert.equal(p.contentMd5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
  assert.equal(p.headers.length, 8);
  const bare = parseMessage(enc.encode("\r\nx"));
  assert.deepEqual(bare.contentType, {
    type: "text",
    subtype: "plain",
    params: { charset: "us-ascii" },
  });
  assert.equal(bare.contentTransferEncoding, "7bit");
  assert.equal("contentId" in bare, false);
});

Deno.test("parseMessage() caps nesting depth instead of recursing without bound", () => {
  let s = "";
  for (let i = 0; i < 200; i++) s += `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n`;
  s += "\nleaf\n";
  const bytes = enc.encode(s);
  let p = parseMessage(bytes);
  let depth = 0;
  while (p.children.length) {
    p = p.children[0];
    depth++;
  }
  assert.equal(depth, MAX_MIME_DEPTH);
  assert.equal(p.contentType.type, "multipart");
  assert.ok(p.end === bytes.length);
});

// Its speed is a benchmark figure (scripts/bench: "parse 25 MiB"), not a test assertion.
Deno.test("parseMessage() parses a 25 MiB single part to its end", () => {
  const line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
  const body = line.repeat(Math.ceil((25 * 1024 * 1024) / line.length));
  const bytes = enc.encode(`Subject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}`);
  const p = parseMessage(bytes);
  assert.equal(p.end, bytes.length);
  assert.equal(p.bodyLines, Math.ceil((25 * 1024 * 1024) / line.length));
});
