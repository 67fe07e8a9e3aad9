import assert from "node:assert/strict";
import { unicodeCasemap } from "./casemap.ts";

// What Dovecot 2.3.19 answered to `SEARCH CHARSET UTF-8 SUBJECT <key>` over three messages with
// these subjects (run on loopback, Debian's dovecot-imapd; the transcript is in the commit).
const SUBJECTS = {
  hi: "hi",
  strasse: "Straße ÉCOLE ﬁsh",
  mixed: "σς Σ ẞ ß É é K İ ǅ ﬀ Ω ａ",
};
type Subject = keyof typeof SUBJECTS;
const DOVECOT: [string, Subject[]][] = [
  ["STRASSE", []],
  ["straße", ["strasse"]],
  ["école", ["strasse"]],
  ["ecole", []],
  ["fish", []],
  ["FISH", []],
  ["ς", ["mixed"]],
  ["σ", ["mixed"]],
  ["Σ", ["mixed"]],
  ["ß", ["strasse", "mixed"]],
  ["ẞ", ["mixed"]],
  ["é", ["strasse", "mixed"]],
  ["e\u0301", ["strasse", "mixed"]],
  ["E\u0301", ["strasse", "mixed"]],
  ["É", ["strasse", "mixed"]],
  ["k", ["mixed"]],
  ["K", ["mixed"]],
  ["\u212a", ["mixed"]],
  ["i", ["hi", "mixed"]],
  ["İ", ["mixed"]],
  ["i\u0307", ["mixed"]],
  ["ǆ", ["mixed"]],
  ["Ǆ", ["mixed"]],
  ["ǅ", ["mixed"]],
  ["ff", []],
  ["ﬀ", ["mixed"]],
  ["ω", ["mixed"]],
  ["Ω", ["mixed"]],
  ["\u2126", ["mixed"]],
  ["a", ["strasse", "mixed"]],
  ["ａ", ["strasse", "mixed"]],
  ["Ａ", ["strasse", "mixed"]],
];

Deno.test("i;unicode-casemap finds what Dovecot 2.3 finds, and only that", () => {
  for (const [key, want] of DOVECOT) {
    const found = (Object.keys(SUBJECTS) as Subject[]).filter((s) =>
      unicodeCasemap(SUBJECTS[s]).includes(unicodeCasemap(key))
    );
    assert.deepEqual(found, want, `SUBJECT ${JSON.stringify(key)}`);
  }
});

Deno.test("i;unicode-casemap: ASCII folds by case only, odd input does not throw", () => {
  assert.equal(unicodeCasemap("Hello, World 123"), "HELLO, WORLD 123");
  assert.equal(unicodeCasemap("jörg"), unicodeCasemap("JÖRG"));
  assert.equal(unicodeCasemap(""), "");
  // A lone surrogate (broken UTF-16 from a bad decoder) does not throw.
  assert.equal(typeof unicodeCasemap("a\ud800b"), "string");
});
