// FETCH arguments: data items (RFC 9051 §6.4.5; BINARY RFC 3516; MODSEQ RFC 7162) with the
// macros ALL, FAST and FULL expanded, each BODY[...] item carrying the exact name its response
// echoes, and the CHANGEDSINCE/VANISHED modifiers (RFC 7162 §3.1.4.1, §3.2.6).

import type { Cursor } from "./parser_cursor.ts";
import { quoted } from "./encode.ts";
import type { FetchItem, Section } from "./types.ts";

const SIMPLE = new Set<string>([
  "FLAGS",
  "UID",
  "INTERNALDATE",
  "RFC822.SIZE",
  "ENVELOPE",
  "BODYSTRUCTURE",
  "MODSEQ",
  "RFC822",
  "RFC822.HEADER",
  "RFC822.TEXT",
]);

// RFC 9051 §6.4.5: the macros are only valid alone, never inside a parenthesized list.
const MACROS: Record<string, FetchItem["kind"][]> = {
  ALL: ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
  FAST: ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
  FULL: ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
};

const ITEM_NAME = /[A-Za-z0-9.]+/y;
// RFC 5322 ftext: printable ASCII except ":".
const FIELD_NAME = /^[!-9;-~]+$/;
const LABEL_ATOM = /^[^(){ %*"\\\]]+$/;

export interface FetchArgs {
  items: FetchItem[];
  changedSince?: number;
  vanished: boolean;
}

/** Everything after `FETCH <set> `: the items, then optional modifiers. */
export function parseFetchArgs(c: Cursor, uid: boolean): FetchArgs {
  const items = parseFetchItems(c);
  const out: FetchArgs = { items, vanished: false };
  if (c.atEnd()) return out;
  c.sp("FETCH modifiers");
  const seen = new Set<string>();
  c.list(() => {
    const name = c.atom("a FETCH modifier").toUpperCase();
    if (seen.has(name)) c.fail(`FETCH modifier ${name} given twice`);
    seen.add(name);
    if (name === "CHANGEDSINCE") {
      c.sp("the CHANGEDSINCE mod-sequence");
      out.changedSince = c.number64("a mod-sequence after CHANGEDSINCE");
    } else if (name === "VANISHED") {
      out.vanished = true;
    } else {
      c.fail(`Unknown FETCH modifier ${name}`);
    }
  }, "the FETCH modifiers");
  // RFC 7162 §3.2.6: VANISHED only with UID FETCH and together with CHANGEDSINCE.
  if (out.vanished && !uid) c.fail("VANISHED is only allowed with UID FETCH");
  if (out.vanished && out.changedSince === undefined) {
    c.fail("VANISHED requires CHANGEDSINCE");
  }
  return out;
}

export function parseFetchItems(c: Cursor): FetchItem[] {
  if (c.peek() === "(") return c.list(() => parseFetchAtt(c), "the FETCH item list");
  const s = c.save();
  const word = c.match(ITEM_NAME)?.toUpperCase();
  if (word && MACROS[word] && c.peek() !== "[") {
    return MACROS[word].map((kind) => ({ kind }) as FetchItem);
  }
  c.restore(s);
  return [parseFetchAtt(c)];
}

function parseFetchAtt(c: Cursor): FetchItem {
  const raw = c.match(ITEM_NAME);
  if (raw === null) c.fail(`Expected a FETCH item, found ${c.found()}`);
  const name = raw.toUpperCase();
  if (SIMPLE.has(name)) return { kind: name } as FetchItem;
  switch (name) {
    case "BODY":
      if (c.peek() !== "[") return { kind: "BODY" };
      return bodySection(c, false);
    case "BODY.PEEK":
      return bodySection(c, true);
    case "BINARY":
    case "BINARY.PEEK": {
      const part = binarySection(c, name);
      const partial = parsePartial(c);
      const label = `BINARY[${part.join(".")}]${partial ? `<${partial.offset}>` : ""}`;
      const peek = name === "BINARY.PEEK";
      return { kind: "BINARY", peek, part, ...(partial ? { partial } : {}), label };
    }
    case "BINARY.SIZE": {
      const part = binarySection(c, name);
      return { kind: "BINARY.SIZE", part, label: `BINARY.SIZE[${part.join(".")}]` };
    }
  }
  if (MACROS[name]) c.fail(`FETCH macro ${name} cannot be used inside a list`);
  return c.fail(`Unknown FETCH item ${raw}`);
}

/** section-part = nz-number *("." nz-number); stops before a following ".TEXT" etc. */
function parts(c: Cursor): number[] {
  const out: number[] = [];
  while (/[0-9]/.test(c.peek())) {
    out.push(c.nzNumber("a body part number"));
    const s = c.save();
    if (!c.take(".")) break;
    if (!/[0-9]/.test(c.peek())) {
      c.restore(s);
      break;
    }
  }
  return out;
}

function binarySection(c: Cursor, name: string): number[] {
  c.expect("[", `"[" after ${name}`);
  const part = parts(c);
  c.expect("]", `"]" to close the ${name} section`);
  return part;
}

function parsePartial(c: Cursor): { offset: number; length: number } | undefined {
  if (!c.take("<")) return undefined;
  const offset = c.number64("the partial offset");
  c.expect(".", `"." between partial offset and length`);
  const length = c.number64("the partial length");
  if (length === 0) c.fail("Partial length must not be 0");
  c.expect(">", `">" to close the partial range`);
  return { offset, length };
}

function bodySection(c: Cursor, peek: boolean): FetchItem {
  c.expect("[", peek ? `"[" after BODY.PEEK` : `"[" after BODY`);
  const section: Section = { part: parts(c), specifier: "" };
  if (section.part.length > 0 ? c.take(".") : /[A-Za-z]/.test(c.peek())) {
    const spec = c.match(/[A-Za-z.]+/y)?.toUpperCase() ?? "";
    switch (spec) {
      case "HEADER":
      case "TEXT":
        section.specifier = spec;
        break;
      case "MIME":
        if (!section.part.length) c.fail("MIME needs a part number, as in BODY[1.MIME]");
        section.specifier = spec;
        break;
      case "HEADER.FIELDS":
      case "HEADER.FIELDS.NOT":
        section.specifier = spec;
        c.sp(`the header field list of ${spec}`);
        section.fields = c.list(() => {
          const f = c.astring("a header field name");
          if (!FIELD_NAME.test(f)) c.fail(`Invalid header field name "${f}"`);
          return f.toUpperCase();
        }, `the ${spec} list`);
        break;
      default:
        c.fail(`Unknown section specifier "${spec}"`);
    }
  }
  c.expect("]", `"]" to close the BODY section`);
  const partial = parsePartial(c);
  // RFC 9051 §7.5.2: the response names the section as requested, and a partial fetch as
  // `<origin>` only.
  let spec = section.part.join(".");
  if (section.specifier) spec += (spec ? "." : "") + section.specifier;
  if (section.fields) {
    spec += ` (${section.fields.map((f) => LABEL_ATOM.test(f) ? f : quoted(f)!).join(" ")})`;
  }
  const label = `BODY[${spec}]${partial ? `<${partial.offset}>` : ""}`;
  return { kind: "BODY[]", peek, section, ...(partial ? { partial } : {}), label };
}
