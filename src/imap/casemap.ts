// i;unicode-casemap (RFC 5051) for SEARCH, as Dovecot 2.3 applies it: each character is mapped
// to its simple titlecase, then decomposed (canonical and compatibility, NFKD); the parts of a
// decomposition are not case-mapped again. Two strings match when one folded string contains
// the other. Observed on Dovecot 2.3.19 (the cases are in casemap_test.ts and
// tests/imap_dovecot_compat_test.ts):
// "straße" finds "Straße" but "STRASSE" does not (no full case folding), "ecole" does not find
// "ÉCOLE" (accents stay), "ａ" finds "a" (compatibility forms decompose), "é" written as e + U+0301
// finds "é", and "ff" does not find "ﬀ" (it decomposes to lowercase "ff", left as is).

/** Simple titlecase mappings that differ from a single-character uppercase. */
function titlecaseException(cp: number): number | undefined {
  // Latin digraphs DŽ, LJ, NJ, DZ: the titlecase is the mixed form.
  if (cp >= 0x01c4 && cp <= 0x01cc) return 0x01c5 + Math.floor((cp - 0x01c4) / 3) * 3;
  if (cp >= 0x01f1 && cp <= 0x01f3) return 0x01f2;
  // Greek with ypogegrammeni: titlecase is the prosgegrammeni form (uppercase is two letters).
  if (cp >= 0x1f80 && cp <= 0x1faf) return (cp & 0xf) < 8 ? cp + 8 : cp;
  if (cp === 0x1fb3) return 0x1fbc;
  if (cp === 0x1fc3) return 0x1fcc;
  if (cp === 0x1ff3) return 0x1ffc;
  // Georgian Mkhedruli letters are their own titlecase (their uppercase is Mtavruli).
  if ((cp >= 0x10d0 && cp <= 0x10fa) || (cp >= 0x10fd && cp <= 0x10ff)) return cp;
  return undefined;
}

const cache = new Map<number, string>();

function foldCodePoint(cp: number): string {
  let out = cache.get(cp);
  if (out !== undefined) return out;
  const ch = String.fromCodePoint(cp);
  let title = titlecaseException(cp);
  if (title === undefined) {
    const upper = ch.toUpperCase();
    // A full mapping to several characters (ß → SS) is not a simple mapping: keep the character.
    title = upper.length === ch.length || [...upper].length === 1 ? upper.codePointAt(0)! : cp;
  }
  out = String.fromCodePoint(title).normalize("NFKD");
  if (cache.size < 65536) cache.set(cp, out);
  return out;
}

function foldNonAscii(segment: string): string {
  let out = "";
  for (const ch of segment) out += foldCodePoint(ch.codePointAt(0)!);
  return out;
}

// Everything above U+007F (the range starts at U+0080, which keeps control characters out of it).
const NON_ASCII = /[\u0080-\u{10ffff}]/u;
const NON_ASCII_RUNS = /([\u0080-\u{10ffff}]+)/u;

/** The folded form of `s`: equal folds mean equal under i;unicode-casemap. */
export function unicodeCasemap(s: string): string {
  if (!NON_ASCII.test(s)) return s.toUpperCase();
  const parts = s.split(NON_ASCII_RUNS);
  for (let i = 0; i < parts.length; i++) {
    parts[i] = i % 2 === 0 ? parts[i].toUpperCase() : foldNonAscii(parts[i]);
  }
  return parts.join("");
}
