// The sender identity of a message: the address of its From field, read so that every reader
// agrees on it. filtermail lowercases the decoded value, cuts it after the first ">" and takes
// the first address mailparse finds; Delta Chat takes the *last* From field and wants exactly one
// address; tern's own address parser drops comments and source routes. So the gate accepts only
// the forms where all of them read the same address, and refuses everything else:
//
//   local@domain            (a domain literal here must not hold ":")
//   <local@domain>
//   display name <local@domain>
//
// with a dot-atom local part, a dot-atom domain or a domain literal, a display name of atoms or
// one quoted string without backslashes, and encoded words in it that decode to no address
// specials. No comments, no groups, no second address, no source route, no blanks inside <>.

import { decodeEncodedWords, type HeaderField, type MimePart } from "../mime/mod.ts";

const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
const DOT_ATOM = `${ATEXT}+(?:\\.${ATEXT}+)*`;
const LITERAL = "\\[[\\x21-\\x5a\\x5e-\\x7e]*\\]";
const ADDR_SPEC = new RegExp(`^(${DOT_ATOM})@(${DOT_ATOM}|${LITERAL})$`);
/** A display-name word: atext, dots and 8-bit bytes (RFC 6532). */
const WORD = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\u0080-\uffff-]+$/;
/** What a decoded encoded word must not contain: it would change how the address is found. */
const SPECIALS = /["<>(),;:@\\[\]]/;

/** Control characters (C0, DEL): never part of a display name. */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c === 127) return true;
  }
  return false;
}

/** The address of a From value in one of the accepted forms, lowercased; else undefined. */
export function strictFromAddress(value: string): string | undefined {
  const v = value.replace(/\r?\n(?=[ \t])/g, "").trim();
  let spec: string;
  if (!v.endsWith(">")) {
    spec = v;
    if (spec.includes(":")) return undefined; // mailparse reads "x@[IPv6:…]" as a group
  } else {
    const lt = v.indexOf("<");
    if (lt < 0 || v.indexOf("<", lt + 1) >= 0 || v.indexOf(">") !== v.length - 1) return undefined;
    spec = v.slice(lt + 1, -1);
    if (!displayNameOk(v.slice(0, lt).trim())) return undefined;
  }
  const m = ADDR_SPEC.exec(spec);
  return m ? `${m[1]}@${m[2]}`.toLowerCase() : undefined;
}

function displayNameOk(name: string): boolean {
  if (name === "") return true;
  if (hasControl(name)) return false;
  if (name.includes("=?")) {
    const decoded = decodeEncodedWords(name).replace(/^"|"$/g, "");
    if (SPECIALS.test(decoded) || hasControl(decoded)) return false;
  }
  if (name.startsWith('"')) {
    const inner = name.slice(1, -1);
    return name.length >= 2 && name.endsWith('"') && !/["\\\r\n]/.test(inner);
  }
  return name.split(/[ \t]+/).every((w) => WORD.test(w));
}

/**
 * The From field filtermail reads: the first field named exactly "From" (a name with blanks
 * before the colon is another field to mailparse).
 */
export function fromField(root: MimePart): HeaderField | undefined {
  return exactField(root, "from");
}

/** The first field whose raw name is exactly `name` (case-insensitive), colon right after. */
export function exactField(part: MimePart, name: string): HeaderField | undefined {
  for (const f of part.headers) {
    if (f.name.length !== name.length || f.name.toLowerCase() !== name) continue;
    const raw = part.rawHeader;
    if (raw && raw[f.start - part.start + f.name.length] !== 58) continue;
    return f;
  }
  return undefined;
}

/** "local@domain" of the message's From field, lowercased; undefined when not unambiguous. */
export function fromHeaderAddress(root: MimePart): string | undefined {
  const f = fromField(root);
  return f ? strictFromAddress(f.value) : undefined;
}
