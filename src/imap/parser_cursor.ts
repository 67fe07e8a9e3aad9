// A cursor over one command's segments (text and literals) with the lexical pieces of the RFC 9051
// §9 grammar: SP, atoms, quoted strings, literals, astrings, numbers, lists, flags, mailboxes,
// sequence sets and dates. Every failure is an ImapSyntaxError that says what was expected and
// what was found, so the client's `BAD` answer is actionable.

import type { RawCommand } from "./command_reader.ts";
import { decodeMailbox, MailboxNameError } from "./encode.ts";
import { parseSequenceSet, SequenceSetError } from "./sequence_set.ts";
import type { SequenceSet } from "./types.ts";

/** A command that does not follow the grammar; the session answers `<tag> BAD <message>`. */
export class ImapSyntaxError extends Error {
  constructor(readonly tag: string | null, message: string) {
    super(message);
    this.name = "ImapSyntaxError";
  }
}

// deno-lint-ignore no-control-regex -- CTLs are atom-specials (RFC 9051 §9)
const ATOM = /[^(){ %*"\\\]\x00-\x1f\x7f-\uffff]+/y;
// ASTRING-CHAR = ATOM-CHAR / "]".
// deno-lint-ignore no-control-regex -- as above
const ASTRING_ATOM = /[^(){ %*"\\\x00-\x1f\x7f-\uffff]+/y;
// tag = 1*<any ASTRING-CHAR except "+">.
// deno-lint-ignore no-control-regex -- as above
const TAG = /[^(){ %*"\\+\x00-\x1f\x7f-\uffff]+/y;
const DIGITS = /[0-9]+/y;
const SEQ_SET = /[0-9:*,$]+/y;
const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const SYSTEM_FLAGS = new Map(
  ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"].map((f) => [f.toUpperCase(), f]),
);
const MAX_UINT32 = 4294967295;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class Cursor {
  readonly #segs: (string | Uint8Array)[];
  #i = 0;
  #p = 0;
  /** The tag once read; carried by every error after that. */
  tag: string | null = null;
  /** Decodes string literals (SEARCH CHARSET may change it). */
  literalDecoder: TextDecoder = utf8;

  constructor(raw: RawCommand) {
    this.#segs = raw.segments.length ? raw.segments : [""];
  }

  fail(message: string): never {
    throw new ImapSyntaxError(this.tag, message);
  }

  /** Current text segment, or null when positioned on a literal. */
  #text(): string | null {
    const s = this.#segs[this.#i];
    return typeof s === "string" ? s : null;
  }

  save(): [number, number] {
    return [this.#i, this.#p];
  }

  restore(state: [number, number]): void {
    [this.#i, this.#p] = state;
  }

  atEnd(): boolean {
    if (this.#i >= this.#segs.length) return true;
    const t = this.#text();
    return this.#i === this.#segs.length - 1 && t !== null && this.#p >= t.length;
  }

  /** The next character, or "" at the end of a text segment. */
  peek(): string {
    return this.#text()?.[this.#p] ?? "";
  }

  /** Whether a literal comes next. */
  atLiteral(): boolean {
    const t = this.#text();
    if (t === null) return this.#i < this.#segs.length;
    return this.#p >= t.length && this.#segs[this.#i + 1] instanceof Uint8Array;
  }

  /** What comes next, for error messages. */
  found(): string {
    if (this.atEnd()) return "end of command";
    if (this.atLiteral()) return "a literal";
    const rest = this.#text()!.slice(this.#p);
    const word = /^[^ ()]*/.exec(rest)![0] || rest[0];
    return `"${word.length > 24 ? word.slice(0, 24) + "…" : word}"`;
  }

  /**
   * Consumes `s` (ASCII, case-insensitive) when it comes next. Lenient where Dovecot is (and
   * Delta Chat and the reference relay's tests rely on it): spaces after "(" and before ")" are
   * ignored, so `(/private/devicetoken "1" )` reads as `(/private/devicetoken "1")`.
   */
  take(s: string): boolean {
    const t = this.#text();
    if (t === null) return false;
    let at = this.#p;
    if (s === ")") { while (t[at] === " ") at++; }
    if (t.slice(at, at + s.length).toUpperCase() !== s.toUpperCase()) return false;
    this.#p = at + s.length;
    if (s === "(") { while (t[this.#p] === " ") this.#p++; }
    return true;
  }

  /** One or more spaces (a run of spaces separates arguments, as in Dovecot); consumed. */
  spaces(): boolean {
    const t = this.#text();
    if (t === null || t[this.#p] !== " ") return false;
    while (t[this.#p] === " ") this.#p++;
    return true;
  }

  expect(s: string, what = `"${s}"`): void {
    if (!this.take(s)) this.fail(`Expected ${what}, found ${this.found()}`);
  }

  /** A sticky regex match at the cursor, consumed. */
  match(re: RegExp): string | null {
    const t = this.#text();
    if (t === null) return null;
    re.lastIndex = this.#p;
    const m = re.exec(t);
    if (!m) return null;
    this.#p += m[0].length;
    return m[0];
  }

  /** Exactly one space; `context` names what should follow, for the error message. */
  sp(context?: string): void {
    if (this.spaces()) return;
    if (context && (this.atEnd() || this.peek() === ")")) this.fail(`Missing ${context}`);
    this.fail(`Expected a space${context ? ` before ${context}` : ""}, found ${this.found()}`);
  }

  /** Exactly one space (between tag, UID and the command name). */
  sp1(context?: string): void {
    const t = this.#text();
    if (t !== null && t[this.#p] === " " && t[this.#p + 1] !== " ") {
      this.#p++;
      return;
    }
    this.fail(`Expected one space${context ? ` before ${context}` : ""}, found ${this.found()}`);
  }

  /** The command must be over (trailing spaces are tolerated). */
  end(): void {
    this.spaces();
    if (!this.atEnd()) this.fail(`Unexpected ${this.found()} after the command's arguments`);
  }

  readTag(): string {
    if (this.atEnd()) throw new ImapSyntaxError(null, "Empty command line");
    const tag = this.match(TAG);
    if (tag === null) throw new ImapSyntaxError(null, `Invalid tag ${this.found()}`);
    this.tag = tag;
    return tag;
  }

  atom(what = "an atom"): string {
    return this.match(ATOM) ?? this.fail(`Expected ${what}, found ${this.found()}`);
  }

  /** An atom, uppercased, without consuming it (null when none comes next). */
  peekAtom(): string | null {
    const t = this.#text();
    if (t === null) return null;
    ATOM.lastIndex = this.#p;
    return ATOM.exec(t)?.[0].toUpperCase() ?? null;
  }

  quoted(): string {
    const t = this.#text();
    if (t === null || t[this.#p] !== '"') {
      this.fail(`Expected a quoted string, found ${this.found()}`);
    }
    let out = "";
    let k = this.#p + 1;
    while (k < t.length) {
      const ch = t[k];
      if (ch === '"') {
        this.#p = k + 1;
        return out;
      }
      if (ch === "\\") {
        const next = t[k + 1];
        if (next !== '"' && next !== "\\") {
          this.fail(`Invalid escape in quoted string: only \\" and \\\\ are allowed`);
        }
        out += next;
        k += 2;
        continue;
      }
      // QUOTED-CHAR is TEXT-CHAR: no NUL, CR or LF (RFC 9051 §9).
      if (ch === "\0" || ch === "\r" || ch === "\n") {
        this.fail("Control character in quoted string");
      }
      out += ch;
      k++;
    }
    this.fail("Unterminated quoted string");
  }

  /** The raw bytes of a literal. */
  literal(what = "a literal"): Uint8Array {
    if (!this.atLiteral()) this.fail(`Expected ${what}, found ${this.found()}`);
    if (this.#text() !== null) this.#i++;
    const bytes = this.#segs[this.#i] as Uint8Array;
    this.#i++;
    this.#p = 0;
    return bytes;
  }

  #decodeLiteral(bytes: Uint8Array): string {
    try {
      return this.literalDecoder.decode(bytes);
    } catch {
      return this.fail(`String literal is not valid ${this.literalDecoder.encoding}`);
    }
  }

  /** string = quoted / literal. */
  string(what = "a string"): string {
    if (this.peek() === '"') return this.quoted();
    if (this.atLiteral()) return this.#decodeLiteral(this.literal());
    return this.fail(`Expected ${what} (quoted or literal), found ${this.found()}`);
  }

  /** astring = 1*ASTRING-CHAR / string. */
  astring(what = "a string"): string {
    if (this.peek() === '"' || this.atLiteral()) return this.string(what);
    return this.match(ASTRING_ATOM) ?? this.fail(`Expected ${what}, found ${this.found()}`);
  }

  #nil(): boolean {
    const s = this.save();
    if (this.match(ATOM)?.toUpperCase() === "NIL") return true;
    this.restore(s);
    return false;
  }

  /** nstring = string / NIL. */
  nstring(what = "a string or NIL"): string | null {
    return this.#nil() ? null : this.string(what);
  }

  /** NIL, a quoted string or a literal, as bytes (literal contents untouched). */
  nstringBytes(what = "a string or NIL"): Uint8Array | string | null {
    if (this.#nil()) return null;
    if (this.atLiteral()) return this.literal();
    if (this.peek() === '"') return this.quoted();
    return this.fail(`Expected ${what}, found ${this.found()}`);
  }

  #digits(what: string): string {
    return this.match(DIGITS) ?? this.fail(`Expected ${what}, found ${this.found()}`);
  }

  /** number = 1*DIGIT, unsigned 32-bit. */
  number(what = "a number"): number {
    const d = this.#digits(what);
    const n = Number(d);
    if (n > MAX_UINT32) this.fail(`Number ${d} is too large`);
    return n;
  }

  nzNumber(what = "a non-zero number"): number {
    const n = this.number(what);
    if (n === 0) this.fail(`Expected ${what}, found 0`);
    return n;
  }

  /** number64 (RFC 9051) and mod-sequence values (RFC 7162), within the exact JS range. */
  number64(what = "a number"): number {
    const d = this.#digits(what);
    const n = Number(d);
    if (!Number.isSafeInteger(n)) this.fail(`Number ${d} is too large`);
    return n;
  }

  /** "(" item *(SP item) ")"; an empty list only when allowed. */
  list<T>(item: () => T, what: string, allowEmpty = false): T[] {
    this.expect("(", `"(" to open ${what}`);
    const out: T[] = [];
    if (this.take(")")) {
      if (!allowEmpty) this.fail(`Empty ${what}`);
      return out;
    }
    while (true) {
      out.push(item());
      if (this.take(")")) return out;
      if (this.atEnd()) this.fail(`Missing ")" to close ${what}`);
      this.sp();
    }
  }

  /** A flag that a client may set: a system flag (canonical case) or a keyword. */
  flag(): string {
    if (this.take("\\")) {
      const name = this.match(ATOM);
      if (name === null) this.fail(`Expected a flag name after "\\", found ${this.found()}`);
      const canonical = SYSTEM_FLAGS.get("\\" + name.toUpperCase());
      if (canonical) return canonical;
      if (name.toUpperCase() === "RECENT") this.fail("The \\Recent flag cannot be set by clients");
      return this.fail(`Unknown system flag \\${name}`);
    }
    return this.atom("a flag");
  }

  /** flag-list = "(" [flag *(SP flag)] ")". */
  flagList(): string[] {
    return this.list(() => this.flag(), "the flag list", true);
  }

  /** mailbox = "INBOX" / astring, decoded from modified UTF-7; INBOX in any case is "INBOX". */
  mailbox(what = "a mailbox name"): string {
    this.no8bit(what);
    const wire = this.astring(what);
    this.no8bit(what);
    return this.decodeMailboxName(wire);
  }

  /** An unquoted 8-bit name would fail as "expected a space"; name the real problem instead. */
  no8bit(what: string): void {
    if (this.peek() > "\x7f") this.fail(`${what} must be 7-bit modified UTF-7 (RFC 3501 §5.1.3)`);
  }

  decodeMailboxName(wire: string): string {
    let name: string;
    try {
      name = decodeMailbox(wire);
    } catch (e) {
      if (!(e instanceof MailboxNameError)) throw e;
      // Not modified UTF-7: the name is taken as written, so it simply does not exist (NO),
      // as Dovecot answers, rather than a syntax error.
      name = wire;
    }
    return name.toUpperCase() === "INBOX" ? "INBOX" : name;
  }

  sequenceSet(what = "a sequence set"): SequenceSet {
    const text = this.match(SEQ_SET);
    if (text === null) this.fail(`Expected ${what}, found ${this.found()}`);
    try {
      return parseSequenceSet(text);
    } catch (e) {
      if (e instanceof SequenceSetError) this.fail(e.message);
      throw e;
    }
  }

  /** date = date-text / DQUOTE date-text DQUOTE; UTC midnight in ms (RFC 9051 §9). */
  date(): number {
    const q = this.take('"');
    const text = this.match(/[0-9]{1,2}-[A-Za-z]{3}-[0-9]{4}/y);
    if (text === null) this.fail(`Expected a date like 1-Feb-2024, found ${this.found()}`);
    if (q) this.expect('"', "closing quote of the date");
    const [d, mon, y] = text.split("-");
    return utcMs(this, Number(y), mon, Number(d), 0, 0, 0, 0, text);
  }

  /** date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE. */
  dateTime(): number {
    const text = this.quoted();
    const m =
      /^ ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})$/
        .exec(text);
    if (!m) this.fail(`Invalid date-time "${text}": expected "dd-Mon-yyyy hh:mm:ss +zzzz"`);
    const [hh, mm, ss, zh, zm] = [m[4], m[5], m[6], m[8], m[9]].map(Number);
    if (hh > 23 || mm > 59 || ss > 60 || zm > 59) this.fail(`Invalid time in "${text}"`);
    const offset = (m[7] === "-" ? -1 : 1) * (zh * 60 + zm);
    return utcMs(this, Number(m[3]), m[2], Number(m[1]), hh, mm, Math.min(ss, 59), offset, text);
  }
}

function utcMs(
  c: Cursor,
  year: number,
  monthName: string,
  day: number,
  h: number,
  min: number,
  s: number,
  offsetMinutes: number,
  text: string,
): number {
  const month = MONTHS.indexOf(monthName.toUpperCase());
  if (month < 0) c.fail(`Invalid month "${monthName}" in "${text}"`);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  if (d.getUTCDate() !== day) c.fail(`Invalid day ${day} in "${text}"`);
  d.setUTCHours(h, min, s, 0);
  return d.getTime() - offsetMinutes * 60_000;
}
