// Parses a raw command (text segments and literals) into a typed Command: RFC 9051 §6 and §9,
// with IMAP4rev1 (RFC 3501) forms and the extensions tern serves: UIDPLUS, MOVE,
// CONDSTORE/QRESYNC, ESEARCH, LIST-EXTENDED/LIST-STATUS, SPECIAL-USE, QUOTA, METADATA, ID,
// ENABLE, COMPRESS, BINARY, SASL-IR, UTF8=APPEND's literal form.

import type { RawCommand } from "./command_reader.ts";
import { Cursor, ImapSyntaxError } from "./parser_cursor.ts";
import { parseFetchArgs } from "./parser_fetch.ts";
import { parseSearchArgs } from "./parser_search.ts";
import type { Command, QresyncParams, StatusItem } from "./types.ts";

export { ImapSyntaxError };

const STATUS_ITEMS = new Set<string>([
  "MESSAGES",
  "RECENT",
  "UIDNEXT",
  "UIDVALIDITY",
  "UNSEEN",
  "HIGHESTMODSEQ",
  "SIZE",
  "DELETED",
]);

const SPECIAL_USE = new Map(
  ["\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"].map((
    a,
  ) => [a.toUpperCase(), a]),
);

// list-char = ATOM-CHAR / list-wildcards / resp-specials (RFC 9051 §9 "list-mailbox").
// deno-lint-ignore no-control-regex -- CTLs are atom-specials
const LIST_CHARS = /[^(){ "\\\x00-\x1f\x7f-\uffff]+/y;

type Parse = (c: Cursor, tag: string, uid: boolean) => Command;

const simple = (name: Command["name"]): Parse => (_c, tag) => ({ tag, name } as Command);

const COMMANDS: Record<string, Parse> = {
  CAPABILITY: simple("CAPABILITY"),
  NOOP: simple("NOOP"),
  LOGOUT: simple("LOGOUT"),
  STARTTLS: simple("STARTTLS"),
  CHECK: simple("CHECK"),
  CLOSE: simple("CLOSE"),
  UNSELECT: simple("UNSELECT"),
  IDLE: simple("IDLE"),
  NAMESPACE: simple("NAMESPACE"),
  EXPUNGE: (c, tag, uid) => {
    if (!uid) return { tag, name: "EXPUNGE" };
    c.sp("the UID set");
    return { tag, name: "UID EXPUNGE", set: c.sequenceSet("a UID set") };
  },
  LOGIN: (c, tag) => {
    c.sp("the user name");
    const user = c.astring("the user name");
    c.sp("the password");
    return { tag, name: "LOGIN", user, password: c.astring("the password") };
  },
  AUTHENTICATE: (c, tag) => {
    c.sp("the SASL mechanism");
    const mechanism = c.atom("a SASL mechanism").toUpperCase();
    if (c.atEnd()) return { tag, name: "AUTHENTICATE", mechanism };
    c.sp();
    // SASL-IR (RFC 4959): base64, or "=" for an empty initial response.
    const initial = c.match(/[A-Za-z0-9+/]+=*|=/y) ??
      c.fail(`Expected a base64 initial response, found ${c.found()}`);
    return { tag, name: "AUTHENTICATE", mechanism, initial };
  },
  ENABLE: (c, tag) => {
    const capabilities: string[] = [];
    do {
      c.sp("a capability to enable");
      capabilities.push(c.atom("a capability name").toUpperCase());
    } while (!c.atEnd());
    return { tag, name: "ENABLE", capabilities };
  },
  ID: (c, tag) => {
    c.sp("the ID parameter list");
    if (c.peekAtom() === "NIL") {
      c.atom();
      return { tag, name: "ID", params: null };
    }
    const params: Record<string, string | null> = {};
    // RFC 2971 §4 requires at least one pair; "()" is accepted as "nothing to say".
    c.list(
      () => {
        const field = c.string("an ID field name");
        c.sp(`the value of ID field "${field}"`);
        params[field] = c.nstring(`the value of ID field "${field}"`);
      },
      "the ID parameter list",
      true,
    );
    return { tag, name: "ID", params };
  },
  COMPRESS: (c, tag) => {
    c.sp("the compression mechanism");
    return { tag, name: "COMPRESS", mechanism: c.atom("a compression mechanism").toUpperCase() };
  },
  SELECT: (c, tag) => select(c, tag, "SELECT"),
  EXAMINE: (c, tag) => select(c, tag, "EXAMINE"),
  CREATE: (c, tag) => {
    c.sp("the mailbox name");
    const mailbox = c.mailbox();
    if (c.atEnd()) return { tag, name: "CREATE", mailbox };
    c.sp("CREATE parameters");
    let specialUse: string[] | undefined;
    c.list(() => {
      const param = c.atom("a CREATE parameter").toUpperCase();
      if (param !== "USE") c.fail(`Unknown CREATE parameter ${param}`);
      c.sp("the USE attribute list");
      // RFC 6154 §3: use-attr = "\All" / "\Archive" / ... / "\" atom.
      specialUse = c.list(
        () => {
          c.expect("\\", `a special-use attribute such as \\Drafts`);
          const attr = "\\" + c.atom("a special-use attribute");
          return SPECIAL_USE.get(attr.toUpperCase()) ?? attr;
        },
        "the USE attribute list",
        true,
      );
    }, "the CREATE parameters");
    return { tag, name: "CREATE", mailbox, ...(specialUse ? { specialUse } : {}) };
  },
  DELETE: (c, tag) => oneMailbox(c, tag, "DELETE"),
  SUBSCRIBE: (c, tag) => oneMailbox(c, tag, "SUBSCRIBE"),
  UNSUBSCRIBE: (c, tag) => oneMailbox(c, tag, "UNSUBSCRIBE"),
  RENAME: (c, tag) => {
    c.sp("the existing mailbox name");
    const from = c.mailbox("the existing mailbox name");
    c.sp("the new mailbox name");
    return { tag, name: "RENAME", from, to: c.mailbox("the new mailbox name") };
  },
  LIST: (c, tag) => list(c, tag),
  LSUB: (c, tag) => {
    c.sp("the reference name");
    const reference = c.mailbox("the reference name");
    c.sp("the mailbox pattern");
    const patterns = [listPattern(c)];
    return { tag, name: "LSUB", reference, patterns, select: [], returnOptions: [] };
  },
  STATUS: (c, tag) => {
    c.sp("the mailbox name");
    const mailbox = c.mailbox();
    c.sp("the STATUS item list");
    return { tag, name: "STATUS", mailbox, items: statusItems(c) };
  },
  APPEND: (c, tag) => append(c, tag),
  SEARCH: (c, tag, uid) => {
    c.sp("the search criteria");
    return { tag, name: "SEARCH", uid, ...parseSearchArgs(c) };
  },
  FETCH: (c, tag, uid) => {
    c.sp("the message set");
    const set = c.sequenceSet("a message set");
    c.sp("the FETCH items");
    return { tag, name: "FETCH", uid, set, ...parseFetchArgs(c, uid) };
  },
  STORE: (c, tag, uid) => store(c, tag, uid),
  COPY: (c, tag, uid) => copyMove(c, tag, uid, "COPY"),
  MOVE: (c, tag, uid) => copyMove(c, tag, uid, "MOVE"),
  GETQUOTA: (c, tag) => {
    c.sp("the quota root");
    return { tag, name: "GETQUOTA", root: c.astring("a quota root") };
  },
  GETQUOTAROOT: (c, tag) => oneMailbox(c, tag, "GETQUOTAROOT"),
  GETMETADATA: (c, tag) => getMetadata(c, tag),
  SETMETADATA: (c, tag) => setMetadata(c, tag),
};

const UID_COMMANDS = new Set(["COPY", "MOVE", "FETCH", "SEARCH", "STORE", "EXPUNGE"]);

/** Parses one command; throws ImapSyntaxError (tag null when no tag could be read). */
export function parseCommand(raw: RawCommand): Command {
  const c: Cursor = new Cursor(raw);
  const tag = c.readTag();
  if (c.atEnd()) c.fail("Missing command name");
  // Exactly one space after the tag and after UID (Dovecot refuses more); arguments may be
  // separated by runs of spaces.
  c.sp1("the command name");
  let name = c.atom("a command name").toUpperCase();
  let uid = false;
  if (name === "UID") {
    c.sp1("the command after UID");
    name = c.atom("a command name").toUpperCase();
    if (!UID_COMMANDS.has(name)) c.fail(`Unknown command UID ${name}`);
    uid = true;
  }
  const parse = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!parse) c.fail(`Unknown command ${name}`);
  const cmd = parse(c, tag, uid);
  c.end();
  return cmd;
}

function oneMailbox<N extends "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" | "GETQUOTAROOT">(
  c: Cursor,
  tag: string,
  name: N,
): Command {
  c.sp("the mailbox name");
  return { tag, name, mailbox: c.mailbox() } as Command;
}

function statusItems(c: Cursor): StatusItem[] {
  return c.list(() => {
    const item = c.atom("a STATUS item").toUpperCase();
    if (!STATUS_ITEMS.has(item)) c.fail(`Unknown STATUS item ${item}`);
    return item as StatusItem;
  }, "the STATUS item list");
}

/** SELECT/EXAMINE mailbox [SP "(" select-param *(SP select-param) ")"] (RFC 7162 §3.1.8, §3.2.5). */
function select(c: Cursor, tag: string, name: "SELECT" | "EXAMINE"): Command {
  c.sp("the mailbox name");
  const mailbox = c.mailbox();
  let condstore = false;
  let qresync: QresyncParams | undefined;
  if (!c.atEnd()) {
    c.sp(`${name} parameters`);
    c.list(() => {
      const param = c.atom(`a ${name} parameter`).toUpperCase();
      if (param === "CONDSTORE") condstore = true;
      else if (param === "QRESYNC") {
        if (qresync) c.fail("QRESYNC given twice");
        c.sp("the QRESYNC parameters");
        qresync = qresyncParams(c);
      } else c.fail(`Unknown ${name} parameter ${param}`);
    }, `the ${name} parameters`);
  }
  return { tag, name, mailbox, condstore, ...(qresync ? { qresync } : {}) };
}

/** "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")". */
function qresyncParams(c: Cursor): QresyncParams {
  c.expect("(", `"(" to open the QRESYNC parameters`);
  const uidValidity = c.nzNumber("the UIDVALIDITY");
  c.sp("the mod-sequence");
  const out: QresyncParams = { uidValidity, modSeq: c.number64("a mod-sequence") };
  if (c.spaces() && c.peek() !== "(") {
    out.knownUids = c.sequenceSet("the known UIDs");
    if (!c.spaces()) {
      c.expect(")", `")" to close the QRESYNC parameters`);
      return out;
    }
  }
  if (c.peek() === "(") {
    c.take("(");
    const seqs = c.sequenceSet("the known sequence set");
    c.sp("the known UID set");
    const uids = c.sequenceSet("the known UID set");
    c.expect(")", `")" to close the sequence match data`);
    out.seqMatch = { seqs, uids };
  }
  c.expect(")", `")" to close the QRESYNC parameters`);
  return out;
}

/** A list-mailbox: list-chars (with the % and * wildcards) or a string; mUTF-7 decoded. */
function listPattern(c: Cursor): string {
  c.no8bit("a mailbox pattern");
  const wire = c.peek() === '"' || c.atLiteral() ? c.string("a mailbox pattern") : c.match(
    LIST_CHARS,
  );
  if (wire === null) c.fail(`Expected a mailbox pattern, found ${c.found()}`);
  c.no8bit("a mailbox pattern");
  return c.decodeMailboxName(wire);
}

/** LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts] (RFC 5258). */
function list(c: Cursor, tag: string): Command {
  c.sp("the reference name");
  const select: string[] = [];
  if (c.peek() === "(") {
    select.push(
      ...c.list(
        () => c.atom("a LIST selection option").toUpperCase(),
        "the selection options",
        true,
      ),
    );
    c.sp("the reference name");
  }
  const reference = c.mailbox("the reference name");
  c.sp("the mailbox pattern");
  const patterns = c.peek() === "("
    ? c.list(() => listPattern(c), "the mailbox pattern list")
    : [listPattern(c)];
  const returnOptions: string[] = [];
  let returnStatus: StatusItem[] | undefined;
  if (!c.atEnd()) {
    c.sp("the RETURN options");
    const word = c.atom("RETURN").toUpperCase();
    if (word !== "RETURN") c.fail(`Expected RETURN, found ${word}`);
    c.sp("the RETURN options");
    c.list(
      () => {
        const opt = c.atom("a LIST RETURN option").toUpperCase();
        returnOptions.push(opt);
        // RFC 5819: STATUS (items) as a return option.
        if (opt === "STATUS") {
          c.sp("the STATUS item list");
          returnStatus = statusItems(c);
        }
      },
      "the RETURN options",
      true,
    );
  }
  return {
    tag,
    name: "LIST",
    reference,
    patterns,
    select,
    returnOptions,
    ...(returnStatus ? { returnStatus } : {}),
  };
}

/** APPEND mailbox [SP flag-list] [SP date-time] SP literal, or UTF8 (literal8) (RFC 6855 §4). */
function append(c: Cursor, tag: string): Command {
  c.sp("the mailbox name");
  const mailbox = c.mailbox();
  c.sp("the message literal");
  let flags: string[] = [];
  let date: number | undefined;
  if (c.peek() === "(") {
    flags = c.flagList();
    c.sp("the message literal");
  }
  if (c.peek() === '"') {
    date = c.dateTime();
    c.sp("the message literal");
  }
  let message: Uint8Array;
  if (c.peekAtom() === "UTF8") {
    c.atom();
    c.sp("the UTF8 message literal");
    c.expect("(", `"(" before the UTF8 message literal`);
    message = c.literal("the message literal");
    c.expect(")", `")" after the UTF8 message literal`);
  } else {
    message = c.literal("the message literal");
  }
  return { tag, name: "APPEND", mailbox, flags, ...(date !== undefined ? { date } : {}), message };
}

/** STORE set [SP "(" UNCHANGEDSINCE n ")"] SP (["+"/"-"] "FLAGS" [".SILENT"]) SP flags. */
function store(c: Cursor, tag: string, uid: boolean): Command {
  c.sp("the message set");
  const set = c.sequenceSet("a message set");
  c.sp("the STORE item");
  let unchangedSince: number | undefined;
  if (c.peek() === "(") {
    c.list(() => {
      const mod = c.atom("a STORE modifier").toUpperCase();
      if (mod !== "UNCHANGEDSINCE") c.fail(`Unknown STORE modifier ${mod}`);
      if (unchangedSince !== undefined) c.fail("UNCHANGEDSINCE given twice");
      c.sp("the UNCHANGEDSINCE mod-sequence");
      unchangedSince = c.number64("a mod-sequence after UNCHANGEDSINCE");
    }, "the STORE modifiers");
    c.sp("the STORE item");
  }
  const item = c.match(/[+-]?[A-Za-z.]+/y)?.toUpperCase();
  const m = item ? /^([+-]?)FLAGS(\.SILENT)?$/.exec(item) : null;
  if (!m) c.fail(`Expected FLAGS, +FLAGS or -FLAGS, found ${item ?? c.found()}`);
  const mode = m[1] === "+" ? "add" : m[1] === "-" ? "remove" : "replace";
  c.sp("the flags");
  let flags: string[];
  if (c.peek() === "(") flags = c.flagList();
  else {
    flags = [c.flag()];
    while (c.spaces() && !c.atEnd()) flags.push(c.flag());
  }
  return {
    tag,
    name: "STORE",
    uid,
    set,
    mode,
    silent: !!m[2],
    flags,
    ...(unchangedSince !== undefined ? { unchangedSince } : {}),
  };
}

function copyMove(c: Cursor, tag: string, uid: boolean, name: "COPY" | "MOVE"): Command {
  c.sp("the message set");
  const set = c.sequenceSet("a message set");
  c.sp("the destination mailbox");
  return { tag, name, uid, set, mailbox: c.mailbox("the destination mailbox") };
}

interface MetadataOptions {
  maxSize?: number;
  depth: "0" | "1" | "infinity";
}

/** "(" MAXSIZE n / DEPTH (0 / 1 / infinity) ... ")" (RFC 5464 §4.2.2, §4.2.3). */
function metadataOptions(c: Cursor, out: MetadataOptions): void {
  c.list(() => {
    const opt = c.atom("a GETMETADATA option").toUpperCase();
    if (opt === "MAXSIZE") {
      c.sp("the MAXSIZE value");
      out.maxSize = c.number64("a size after MAXSIZE");
    } else if (opt === "DEPTH") {
      c.sp("the DEPTH value");
      const d = c.atom("0, 1 or infinity").toLowerCase();
      if (d !== "0" && d !== "1" && d !== "infinity") {
        c.fail(`Invalid DEPTH ${d}: expected 0, 1 or infinity`);
      }
      out.depth = d;
    } else c.fail(`Unknown GETMETADATA option ${opt}`);
  }, "the GETMETADATA options");
}

/** Whether a "(" starts GETMETADATA options rather than an entry list. */
function atMetadataOptions(c: Cursor): boolean {
  if (c.peek() !== "(") return false;
  const s = c.save();
  c.take("(");
  const word = c.peekAtom();
  c.restore(s);
  return word === "MAXSIZE" || word === "DEPTH";
}

function entryName(c: Cursor): string {
  const entry = c.astring("a metadata entry name");
  // RFC 5464 §3.2: entries are slash-separated paths without wildcards.
  if (!entry.startsWith("/") || entry.endsWith("/") || entry.includes("//") || /[*%]/.test(entry)) {
    c.fail(`Invalid metadata entry name "${entry}"`);
  }
  return entry;
}

/** GETMETADATA [options SP] mailbox [SP options] SP (entry / "(" entries ")"). */
function getMetadata(c: Cursor, tag: string): Command {
  const opts: MetadataOptions = { depth: "0" };
  c.sp("the mailbox name");
  // RFC 5464 puts options first; some clients (and the draft) put them after the mailbox.
  if (atMetadataOptions(c)) {
    metadataOptions(c, opts);
    c.sp("the mailbox name");
  }
  const mailbox = c.mailbox();
  c.sp("the metadata entries");
  if (atMetadataOptions(c)) {
    metadataOptions(c, opts);
    c.sp("the metadata entries");
  }
  const entries = c.peek() === "("
    ? c.list(() => entryName(c), "the metadata entry list")
    : [entryName(c)];
  return { tag, name: "GETMETADATA", mailbox, entries, ...opts };
}

/** SETMETADATA mailbox SP "(" entry SP value *(SP entry SP value) ")" (RFC 5464 §4.3). */
function setMetadata(c: Cursor, tag: string): Command {
  c.sp("the mailbox name");
  const mailbox = c.mailbox();
  c.sp("the metadata entry list");
  const entries = c.list(() => {
    const entry = entryName(c);
    c.sp(`the value of ${entry}`);
    const raw = c.nstringBytes(`the value of ${entry} (string, literal or NIL)`);
    let value: string | null;
    if (raw instanceof Uint8Array) {
      try {
        value = new TextDecoder("utf-8", { fatal: true }).decode(raw);
      } catch {
        c.fail(`The value of ${entry} is not UTF-8 text`);
      }
    } else value = raw;
    return { entry, value };
  }, "the metadata entry list");
  return { tag, name: "SETMETADATA", mailbox, entries };
}
