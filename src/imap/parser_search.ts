// SEARCH arguments (RFC 3501 §6.4.4 keys; ESEARCH RETURN options RFC 4731 and SAVE RFC 5182;
// MODSEQ RFC 7162 §3.1.5; OLDER/YOUNGER RFC 5032) into one SearchKey tree.

import type { Cursor } from "./parser_cursor.ts";
import type { SearchKey } from "./types.ts";

export interface SearchArgs {
  key: SearchKey;
  returnOptions?: string[];
  charset?: string;
}

const RETURN_OPTIONS = new Set(["MIN", "MAX", "ALL", "COUNT", "SAVE"]);
// Nesting bound: a client cannot make the parser (or the evaluator) recurse without limit.
const MAX_DEPTH = 64;

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ["\\Answered", false],
  DELETED: ["\\Deleted", false],
  DRAFT: ["\\Draft", false],
  FLAGGED: ["\\Flagged", false],
  SEEN: ["\\Seen", false],
  UNANSWERED: ["\\Answered", true],
  UNDELETED: ["\\Deleted", true],
  UNDRAFT: ["\\Draft", true],
  UNFLAGGED: ["\\Flagged", true],
  UNSEEN: ["\\Seen", true],
};

// The address and subject keys are header searches (RFC 3501 §6.4.4).
const HEADER_KEYS: Record<string, string> = {
  BCC: "Bcc",
  CC: "Cc",
  FROM: "From",
  SUBJECT: "Subject",
  TO: "To",
};

const DATE_KEYS: Record<string, [("BEFORE" | "ON" | "SINCE"), boolean]> = {
  BEFORE: ["BEFORE", false],
  ON: ["ON", false],
  SINCE: ["SINCE", false],
  SENTBEFORE: ["BEFORE", true],
  SENTON: ["ON", true],
  SENTSINCE: ["SINCE", true],
};

/** Everything after `SEARCH `. */
export function parseSearchArgs(c: Cursor): SearchArgs {
  const out: Partial<SearchArgs> = {};
  if (c.peekAtom() === "RETURN") {
    c.atom();
    c.sp("the RETURN options");
    // RFC 4731 §3.1: an empty list means ALL; the session reads [] that way.
    out.returnOptions = c.list(
      () => {
        const opt = c.atom("a SEARCH RETURN option").toUpperCase();
        if (!RETURN_OPTIONS.has(opt)) c.fail(`Unknown SEARCH RETURN option ${opt}`);
        return opt;
      },
      "the RETURN options",
      true,
    );
    c.sp("the search criteria");
  }
  if (c.peekAtom() === "CHARSET") {
    c.atom();
    c.sp("the charset name");
    out.charset = c.astring("a charset name").toUpperCase();
    c.literalDecoder = decoderFor(out.charset);
    c.sp("the search criteria");
  }
  const keys = [parseKey(c, 0)];
  while (!c.atEnd()) {
    c.sp();
    if (c.atEnd()) break;
    keys.push(parseKey(c, 0));
  }
  out.key = keys.length === 1 ? keys[0] : { kind: "AND", keys };
  return out as SearchArgs;
}

/** Literals in the client's charset; an unknown one stays UTF-8 (the session says BADCHARSET). */
function decoderFor(charset: string): TextDecoder {
  try {
    return new TextDecoder(charset, { fatal: true });
  } catch {
    return new TextDecoder("utf-8", { fatal: true });
  }
}

function parseKey(c: Cursor, depth: number): SearchKey {
  if (depth > MAX_DEPTH) c.fail(`Search criteria nested deeper than ${MAX_DEPTH} levels`);
  const ch = c.peek();
  if (ch === "(") {
    const keys = c.list(() => parseKey(c, depth + 1), "the search criteria list");
    return keys.length === 1 ? keys[0] : { kind: "AND", keys };
  }
  if (/[0-9*$]/.test(ch)) return { kind: "SEQ", set: c.sequenceSet() };
  if (c.atEnd()) c.fail("Missing search criteria");
  const name = c.atom("a search key").toUpperCase();
  if (name in FLAG_KEYS) {
    const [flag, negate] = FLAG_KEYS[name];
    return { kind: "FLAG", flag, negate };
  }
  if (name in HEADER_KEYS) {
    c.sp(`the ${name} string`);
    return { kind: "HEADER", field: HEADER_KEYS[name], value: c.astring(`the ${name} string`) };
  }
  if (name in DATE_KEYS) {
    const [op, sent] = DATE_KEYS[name];
    c.sp(`the ${name} date`);
    return { kind: "DATE", op, sent, date: c.date() };
  }
  switch (name) {
    case "ALL":
    case "NEW":
    case "OLD":
    case "RECENT":
      return { kind: name };
    case "BODY":
    case "TEXT":
      c.sp(`the ${name} string`);
      return { kind: name, value: c.astring(`the ${name} string`) };
    case "HEADER": {
      c.sp("the header field name");
      const field = c.astring("a header field name");
      c.sp("the header value");
      return { kind: "HEADER", field, value: c.astring("the header value") };
    }
    case "KEYWORD":
    case "UNKEYWORD":
      c.sp("the keyword");
      return { kind: "FLAG", flag: c.atom("a keyword"), negate: name === "UNKEYWORD" };
    case "LARGER":
    case "SMALLER":
      c.sp(`the ${name} size`);
      return { kind: "SIZE", op: name, size: c.number64(`a size after ${name}`) };
    case "OLDER":
    case "YOUNGER":
      c.sp(`the ${name} interval`);
      return { kind: "AGE", op: name, seconds: c.nzNumber(`seconds after ${name}`) };
    case "UID":
      c.sp("the UID set");
      return { kind: "UID", set: c.sequenceSet("a UID set") };
    case "NOT":
      c.sp("the criterion to negate");
      return { kind: "NOT", key: parseKey(c, depth + 1) };
    case "OR": {
      c.sp("the first OR criterion");
      const left = parseKey(c, depth + 1);
      c.sp("the second OR criterion");
      return { kind: "OR", left, right: parseKey(c, depth + 1) };
    }
    case "MODSEQ":
      return { kind: "MODSEQ", modSeq: modSeqKey(c) };
  }
  return c.fail(`Unknown search key ${name}`);
}

/** MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162 §3.1.5). */
function modSeqKey(c: Cursor): number {
  c.sp("the MODSEQ value");
  if (c.peek() === '"' || c.atLiteral()) {
    // The entry is a per-flag modseq the store does not track; it is checked, then ignored.
    const entry = c.string("a MODSEQ entry name");
    if (!entry.toLowerCase().startsWith("/flags/")) {
      c.fail(`Invalid MODSEQ entry name "${entry}": expected "/flags/<flag>"`);
    }
    c.sp("the MODSEQ entry type");
    const type = c.atom("priv, shared or all").toLowerCase();
    if (type !== "priv" && type !== "shared" && type !== "all") {
      c.fail(`Invalid MODSEQ entry type ${type}: expected priv, shared or all`);
    }
    c.sp("the MODSEQ value");
  }
  return c.number64("a mod-sequence after MODSEQ");
}
