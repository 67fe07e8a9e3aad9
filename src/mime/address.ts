// RFC 5322 §3.4 address lists (mailboxes and groups), including obsolete forms, parsed
// tolerantly: garbage yields fewer addresses, never an exception.

export interface Mailbox {
  kind: "mailbox";
  /** Display name as written (quotes removed, encoded words not decoded). */
  name?: string;
  local: string;
  /** Empty when the address has no "@"; a domain literal keeps its brackets: "[127.0.0.1]". */
  domain: string;
  /** Obsolete source route, "@a,@b" (the ENVELOPE adl). */
  route?: string;
}

export interface AddressGroup {
  kind: "group";
  name: string;
  members: Mailbox[];
}

export type Address = Mailbox | AddressGroup;

type Token =
  & (
    | { t: "word"; v: string; quoted: boolean; space: boolean }
    | { t: "literal"; v: string; space: boolean }
    | { t: "special"; v: string; space: boolean }
  )
  & {
    /** Text of a comment right after the token: the display name of "user@host (Name)". */
    after?: string;
  };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let space = false;
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      space = true;
      i++;
    } else if (c === "(") {
      const start = i;
      let depth = 0;
      for (; i < s.length; i++) {
        if (s[i] === "\\") i++;
        else if (s[i] === "(") depth++;
        else if (s[i] === ")" && --depth === 0) break;
      }
      const text = s.slice(start + 1, Math.min(i, s.length)).replace(/\\(.)/g, "$1").trim();
      if (out.length && text) out[out.length - 1].after = text;
      i++;
      space = true;
    } else if (c === '"') {
      let v = "";
      for (i++; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === "\\" && i + 1 < s.length) i++;
        v += s[i];
      }
      i++;
      out.push({ t: "word", v, quoted: true, space });
      space = false;
    } else if (c === "[") {
      const close = s.indexOf("]", i);
      const end = close < 0 ? s.length : close + 1;
      out.push({ t: "literal", v: s.slice(i, end) + (close < 0 ? "]" : ""), space });
      i = end;
      space = false;
    } else if ("<>@,;:.".includes(c)) {
      out.push({ t: "special", v: c, space });
      i++;
      space = false;
    } else {
      const start = i;
      while (i < s.length && !/[\s()"[\]<>@,;:.\\]/.test(s[i])) i++;
      if (i === start) i++; // a lone backslash or "]": skip it
      else out.push({ t: "word", v: s.slice(start, i), quoted: false, space });
      space = false;
    }
  }
  return out;
}

class Reader {
  i = 0;
  constructor(readonly toks: Token[]) {}
  peek(): Token | undefined {
    return this.toks[this.i];
  }
  isSpecial(v: string): boolean {
    const t = this.toks[this.i];
    return t !== undefined && t.t === "special" && t.v === v;
  }
}

/** Words, dots and literals up to any other special: the text spaced as written, and glued. */
function readPhrase(r: Reader): { text: string; dotted: string; n: number } {
  let text = "", dotted = "", n = 0;
  for (let t = r.peek(); t && !(t.t === "special" && t.v !== "."); t = r.peek()) {
    text += (n > 0 && t.space ? " " : "") + t.v;
    dotted += t.v;
    n++;
    r.i++;
  }
  return { text, dotted, n };
}

function readAngle(r: Reader, name: string | undefined): Mailbox | undefined {
  r.i++; // "<"
  let route = "";
  if (r.isSpecial("@")) { // obsolete route "<@a,@b:user@domain>"
    while (r.peek() && !r.isSpecial(":") && !r.isSpecial(">")) route += r.toks[r.i++].v;
    if (r.isSpecial(":")) r.i++;
  }
  const local = readPhrase(r).dotted;
  let domain = "";
  if (r.isSpecial("@")) {
    r.i++;
    domain = readPhrase(r).dotted;
  }
  while (r.peek() && !r.isSpecial(">")) r.i++;
  if (r.isSpecial(">")) r.i++;
  if (!local && !domain) return undefined; // "<>"
  const m: Mailbox = name
    ? { kind: "mailbox", name, local, domain }
    : { kind: "mailbox", local, domain };
  if (route) m.route = route;
  return m;
}

/** One mailbox, or undefined for an empty or unusable entry; stops before "," ";" or the end. */
function readMailbox(r: Reader): Mailbox | undefined {
  const phrase = readPhrase(r);
  if (r.isSpecial("<")) return readAngle(r, phrase.n ? phrase.text : undefined);
  if (r.isSpecial("@")) {
    r.i++;
    const domain = readPhrase(r).dotted;
    if (r.isSpecial("<")) return readAngle(r, `${phrase.dotted}@${domain}`); // "a@b <c@d>"
    // "user@domain (Real Name)": the obsolete form names the mailbox in a comment.
    const comment = r.toks[r.i - 1]?.after;
    return comment
      ? { kind: "mailbox", name: comment, local: phrase.dotted, domain }
      : { kind: "mailbox", local: phrase.dotted, domain };
  }
  return phrase.n ? { kind: "mailbox", local: phrase.dotted, domain: "" } : undefined;
}

function skipToComma(r: Reader, alsoSemicolon: boolean) {
  while (r.peek() && !r.isSpecial(",") && !(alsoSemicolon && r.isSpecial(";"))) r.i++;
}

/** Parses an address list (From, To, Cc, …). Never throws. */
export function parseAddressList(value: string): Address[] {
  const r = new Reader(tokenize(value));
  const out: Address[] = [];
  while (r.peek()) {
    if (r.isSpecial(",") || r.isSpecial(";") || r.isSpecial(">")) {
      r.i++;
      continue;
    }
    const mark = r.i;
    const phrase = readPhrase(r);
    if (r.isSpecial(":")) {
      r.i++;
      const members: Mailbox[] = [];
      while (r.peek() && !r.isSpecial(";")) {
        if (r.isSpecial(",") || r.isSpecial(":")) {
          r.i++;
          continue;
        }
        const m = readMailbox(r);
        if (m) members.push(m);
        skipToComma(r, true);
      }
      if (r.isSpecial(";")) r.i++;
      out.push({ kind: "group", name: phrase.text, members });
      continue;
    }
    r.i = mark;
    const m = readMailbox(r);
    if (m) out.push(m);
    skipToComma(r, false);
  }
  return out;
}

/** Every mailbox of the list, group members included, in order. */
export function flattenAddresses(list: readonly Address[]): Mailbox[] {
  return list.flatMap((a) => a.kind === "group" ? a.members : [a]);
}

/** "local@domain", quoting the local part when RFC 5322 requires it. */
export function formatAddress(m: Mailbox): string {
  const local =
    /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/.test(m.local) ||
      /[^\p{ASCII}]/u.test(m.local) && !/[\s"\\@<>()[\],;:]/.test(m.local)
      ? m.local
      : `"${m.local.replace(/(["\\])/g, "\\$1")}"`;
  return m.domain ? `${local}@${m.domain}` : local;
}
