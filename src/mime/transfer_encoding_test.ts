import assert from "node:assert/strict";
import { parseMessage } from "./parse_message.ts";
import {
  decodeBase64,
  decodeBody,
  decodeQuotedPrintable,
  decodeText,
} from "./transfer_encoding.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("decodeBase64() decodes tolerantly", () => {
  const table: [string, string][] = [
    ["SGVsbG8sIHdvcmxkIQ==", "Hello, world!"],
    ["SGVs\r\nbG8s\r\nIHdv\r\ncmxk\r\nIQ==\r\n", "Hello, world!"],
    ["SGVsbG8", "Hello"],
    ["SGV*sb-G8.", "Hello"],
    ["SGVsbG8=trailing junk", "Hello"],
    ["", ""],
    ["A", ""],
  ];
  for (const [input, expect] of table) {
    assert.equal(dec.decode(decodeBase64(enc.encode(input))), expect, input);
  }
});

Deno.test("decodeQuotedPrintable() decodes escapes and soft breaks", () => {
  const table: [string, string][] = [
    ["a=3Db", "a=b"],
    ["caf=C3=A9", "café"],
    ["soft=\r\nbreak", "softbreak"],
    ["soft=\nbreak", "softbreak"],
    ["soft=  \r\nbreak", "softbreak"],
    ["bad=ZZ escape", "bad=ZZ escape"],
    ["lower=c3=a9", "loweré"],
    ["trailing=", "trailing"],
    ["line\r\nbreaks\r\n", "line\r\nbreaks\r\n"],
  ];
  for (const [input, expect] of table) {
    assert.equal(dec.decode(decodeQuotedPrintable(enc.encode(input))), expect, input);
  }
});

Deno.test("decodeBody() and decodeText() use the part's encoding and charset", () => {
  const bytes = enc.encode(
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
      "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
      "J=F6rg\r\n--b\r\nContent-Transfer-Encoding: BASE64\r\n\r\nw7w=\r\n--b\r\n\r\nraw\r\n--b--\r\n",
  );
  const [qp, b64, raw] = parseMessage(bytes).children;
  assert.equal(decodeText(qp, bytes), "Jörg");
  assert.equal(dec.decode(decodeBody(b64, bytes)), "ü");
  assert.equal(decodeText(raw, bytes), "raw");
  assert.equal(decodeBody(raw, bytes).buffer, bytes.buffer, "identity encodings are not copied");
});
