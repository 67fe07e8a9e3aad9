import assert from "node:assert/strict";
import { decodeEncodedWords } from "./encoded_words.ts";

const cases: [string, string][] = [
  ["plain text", "plain text"],
  ["=?utf-8?B?SGVsbG8=?=", "Hello"],
  ["=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=", "Jörg Müller"],
  ["=?iso-8859-1?q?J=F6rg?=", "Jörg"],
  ["=?us-ascii?Q?a_b?=", "a b"],
  ["=?utf-8?q?a?= =?utf-8?q?b?=", "ab"],
  ["=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"],
  ["=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"],
  ["pre =?utf-8?b?w7w=?= post", "pre ü post"],
  // a two-byte character split across two words
  ["=?utf-8?B?ww==?= =?utf-8?B?pg==?=", "æ"],
  ["=?utf-8?q?=C3?= =?utf-8?q?=A4?=", "ä"],
  ["=?utf-8*en?q?lang?=", "lang"],
  ["=?x-unknown?q?abc?=", "abc"],
  ["=?utf-8?x?bad-encoding?=", "=?utf-8?x?bad-encoding?="],
  ["=?utf-8?q?unterminated", "=?utf-8?q?unterminated"],
  ["=?utf-8?q?=ZZ?=", "=ZZ"],
  ["=?windows-1252?q?=80?=", "€"],
];

Deno.test("decodeEncodedWords() decodes RFC 2047 words", () => {
  for (const [input, expect] of cases) assert.equal(decodeEncodedWords(input), expect, input);
});
