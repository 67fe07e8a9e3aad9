// SEARCH evaluation (RFC 3501 §6.4.4, with CONDSTORE MODSEQ, RFC 5032 WITHIN and RFC 5182 "$")
// on one message. The message content is loaded lazily and at most once, and keys that need it
// are evaluated last, so a search on flags, UIDs, dates or sizes never reads a body. Strings
// match under i;unicode-casemap (RFC 5051, as Dovecot applies it: casemap.ts).

import {
  decodeEncodedWords,
  decodeText,
  flattenAddresses,
  type MimePart,
  parseAddressList,
  parseMessage,
} from "../mime/mod.ts";
import type { SearchKey, SequenceSet } from "./types.ts";
import { unicodeCasemap } from "./casemap.ts";

export interface SearchContext {
  seq: number;
  uid: number;
  flags: readonly string[];
  /** INTERNALDATE, ms since the epoch. */
  internalDate: number;
  /** RFC822.SIZE. */
  size: number;
  modSeq: number;
  recent: boolean;
  /** The values "*" stands for in sequence-number and UID sets. */
  maxSeq: number;
  maxUid: number;
  /** Current time, ms since the epoch (for OLDER/YOUNGER). */
  now: number;
  /** Called only for keys that need content, at most once per matchesSearch call. */
  message(): SearchMessage;
}

/**
 * What content keys read of a message: its part tree (top-level header fields included) and a
 * test on the decoded text of its text/* leaf parts. A large stored message answers `bodyHas`
 * from a pass that streamed its text parts (search_text.ts) and never holds its body.
 */
export interface SearchMessage {
  root: MimePart;
  /**
   * Whether the decoded text of some text/* leaf part (encapsulated messages included), mapped
   * with unicodeCasemap, contains `needle` (already mapped).
   */
  bodyHas(needle: string): boolean;
}

/** The text/* leaf parts of a message, encapsulated messages included, in order. */
export function textParts(root: MimePart): MimePart[] {
  const out: MimePart[] = [];
  const walk = (p: MimePart) => {
    if (p.children.length > 0) p.children.forEach(walk);
    else if (p.message) walk(p.message);
    else if (p.contentType.type === "text") out.push(p);
  };
  walk(root);
  return out;
}

/** A SearchMessage on a message held whole (small messages, tests). */
export function wholeMessage(
  bytes: Uint8Array,
  root: MimePart = parseMessage(bytes),
): SearchMessage {
  let texts: string[] | undefined;
  return {
    root,
    bodyHas(needle) {
      texts ??= textParts(root).map((p) => unicodeCasemap(decodeText(p, bytes)));
      return texts.some((t) => t.includes(needle));
    },
  };
}

/** The needles (mapped with unicodeCasemap) of the BODY and TEXT keys: what bodyHas is asked. */
export function bodyNeedles(key: SearchKey, into = new Set<string>()): Set<string> {
  switch (key.kind) {
    case "BODY":
    case "TEXT":
      into.add(unicodeCasemap(key.value));
      break;
    case "NOT":
      bodyNeedles(key.key, into);
      break;
    case "OR":
      bodyNeedles(key.left, into);
      bodyNeedles(key.right, into);
      break;
    case "AND":
      for (const k of key.keys) bodyNeedles(k, into);
      break;
  }
  return into;
}

/** The saved search result ("$", RFC 5182) as UIDs; absent means there is none (empty). */
export type SavedResult = readonly number[] | { has(uid: number): boolean };

const DAY = 86_400_000;

/** True when evaluating the key may read the message content (headers or body). */
export function needsContent(key: SearchKey): boolean {
  switch (key.kind) {
    case "HEADER":
    case "BODY":
    case "TEXT":
      return true;
    case "DATE":
      return key.sent;
    case "NOT":
      return needsContent(key.key);
    case "OR":
      return needsContent(key.left) || needsContent(key.right);
    case "AND":
      return key.keys.some(needsContent);
    default:
      return false;
  }
}

/**
 * Membership in a sequence set without expanding it: `null` ends stand for `max`, and a range
 * may be written high to low ("5:2" is "2:5", RFC 3501 §9 seq-range).
 */
export function inSequenceSet(
  set: SequenceSet,
  n: number,
  max: number,
  uid: number,
  saved?: SavedResult,
): boolean {
  if ("saved" in set) {
    if (!saved) return false;
    return Array.isArray(saved)
      ? (saved as readonly number[]).includes(uid)
      : (saved as { has(uid: number): boolean }).has(uid);
  }
  for (const r of set.ranges) {
    const a = r.from ?? max, b = r.to ?? max;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

function hasFlag(flags: readonly string[], flag: string): boolean {
  // System flags and keywords are both matched without regard to case (RFC 3501 §2.3.2).
  const f = flag.toLowerCase();
  return flags.some((x) => x.toLowerCase() === f);
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/**
 * The calendar day a Date header names, as UTC midnight in ms, "disregarding time and timezone"
 * (RFC 3501 §6.4.4): the day as written, not converted to UTC. Undefined when unparsable.
 */
export function sentDay(value: string): number | undefined {
  const m = /(\d{1,2})\s+([a-z]{3})[a-z]*\.?\s+(\d{2,4})\b/i.exec(value);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2].toLowerCase());
  if (month < 0) return undefined;
  let year = Number(m[3]);
  // Obsolete 2- and 3-digit years (RFC 5322 §4.3).
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  const day = Number(m[1]);
  if (day < 1 || day > 31) return undefined;
  return Date.UTC(year, month, day);
}

function compareDay(day: number, op: "BEFORE" | "ON" | "SINCE", date: number): boolean {
  switch (op) {
    case "BEFORE":
      return day < date;
    case "ON":
      return day === date;
    case "SINCE":
      return day >= date;
  }
}

const ADDRESS_FIELDS = new Set(["from", "to", "cc", "bcc", "sender", "reply-to"]);

/** Per-evaluation cache of the loaded message and its derived, case-mapped header texts. */
class Content {
  private msg?: SearchMessage;
  private headerText?: { name: string; value: string }[];

  constructor(private readonly ctx: SearchContext) {}

  get message(): SearchMessage {
    return this.msg ??= this.ctx.message();
  }

  /** Top-level header fields with encoded words decoded, names lowercased, values case-mapped. */
  get headers(): { name: string; value: string }[] {
    return this.headerText ??= this.message.root.headers
      .filter((f) => f.name !== "")
      .map((f) => {
        const name = f.name.toLowerCase();
        let value = decodeEncodedWords(f.value);
        // Address fields also match on their parsed addresses (comments and folding inside an
        // address do not hide it): "Name local@domain" for each mailbox.
        if (ADDRESS_FIELDS.has(name)) {
          const parsed = flattenAddresses(parseAddressList(f.value))
            .map((m) => `${m.name ? decodeEncodedWords(m.name) + " " : ""}${m.local}@${m.domain}`);
          value = `${value}\n${parsed.join("\n")}`;
        }
        return { name, value: unicodeCasemap(value) };
      });
  }
}

function evaluate(key: SearchKey, ctx: SearchContext, c: Content, saved?: SavedResult): boolean {
  switch (key.kind) {
    case "ALL":
      return true;
    case "SEQ":
      return inSequenceSet(key.set, ctx.seq, ctx.maxSeq, ctx.uid, saved);
    case "UID":
      return inSequenceSet(key.set, ctx.uid, ctx.maxUid, ctx.uid, saved);
    case "FLAG":
      return hasFlag(ctx.flags, key.flag) !== key.negate;
    case "NEW":
      return ctx.recent && !hasFlag(ctx.flags, "\\Seen");
    case "OLD":
      return !ctx.recent;
    case "RECENT":
      return ctx.recent;
    case "HEADER": {
      // Substring, case-insensitive, on the decoded value; an empty string matches every
      // message that has the field at all.
      const name = key.field.toLowerCase();
      const needle = unicodeCasemap(key.value);
      return c.headers.some((f) => f.name === name && f.value.includes(needle));
    }
    case "BODY": {
      return c.message.bodyHas(unicodeCasemap(key.value));
    }
    case "TEXT": {
      const needle = unicodeCasemap(key.value);
      return c.headers.some((f) => `${unicodeCasemap(f.name)}: ${f.value}`.includes(needle)) ||
        c.message.bodyHas(needle);
    }
    case "DATE": {
      if (!key.sent) return compareDay(Math.floor(ctx.internalDate / DAY) * DAY, key.op, key.date);
      const f = c.headers.find((h) => h.name === "date");
      const day = f ? sentDay(f.value) : undefined;
      return day !== undefined && compareDay(day, key.op, key.date);
    }
    case "SIZE":
      return key.op === "LARGER" ? ctx.size > key.size : ctx.size < key.size;
    case "MODSEQ":
      return ctx.modSeq >= key.modSeq;
    case "AGE": {
      // RFC 5032: OLDER n and YOUNGER n partition the messages.
      const age = (ctx.now - ctx.internalDate) / 1000;
      return key.op === "OLDER" ? age >= key.seconds : age < key.seconds;
    }
    case "NOT":
      return !evaluate(key.key, ctx, c, saved);
    case "OR": {
      const [a, b] = needsContent(key.left) && !needsContent(key.right)
        ? [key.right, key.left]
        : [key.left, key.right];
      return evaluate(a, ctx, c, saved) || evaluate(b, ctx, c, saved);
    }
    case "AND": {
      // Cheap keys first: a failing flag or UID test spares loading the message.
      const cheap = key.keys.filter((k) => !needsContent(k));
      const costly = key.keys.filter(needsContent);
      return cheap.every((k) => evaluate(k, ctx, c, saved)) &&
        costly.every((k) => evaluate(k, ctx, c, saved));
    }
  }
}

/**
 * Whether the message matches the key. `saved` is the RFC 5182 saved result (UIDs) that "$"
 * refers to in SEQ and UID keys; without one, "$" matches nothing.
 */
export function matchesSearch(key: SearchKey, ctx: SearchContext, saved?: SavedResult): boolean {
  return evaluate(key, ctx, new Content(ctx), saved);
}

/**
 * What is known about a message another session expunged and this one was not told about yet
 * (its tombstone): null fields are unknown, and so is its content and its last modseq.
 */
export interface KnownContext {
  seq: number;
  uid: number;
  flags: readonly string[] | null;
  internalDate: number | null;
  size: number | null;
  /** Known for stored messages; a tombstone's is that of the expunge, not of the message. */
  modSeq?: number;
  recent: boolean;
  maxSeq: number;
  maxUid: number;
  now: number;
}

/**
 * The key on what is known (three-valued: undefined when the answer needs what is not known,
 * such as the content). For a stored message, undefined means: read it and use matchesSearch.
 * For an expunged one, SEARCH includes it when true and says [EXPUNGEISSUED] when undefined,
 * as Dovecot does.
 */
export function matchesKnown(
  key: SearchKey,
  k: KnownContext,
  saved?: SavedResult,
): boolean | undefined {
  switch (key.kind) {
    case "ALL":
      return true;
    case "SEQ":
      return inSequenceSet(key.set, k.seq, k.maxSeq, k.uid, saved);
    case "UID":
      return inSequenceSet(key.set, k.uid, k.maxUid, k.uid, saved);
    case "RECENT":
      return k.recent;
    case "OLD":
      return !k.recent;
    case "FLAG":
      return k.flags === null ? undefined : hasFlag(k.flags, key.flag) !== key.negate;
    case "NEW":
      if (!k.recent) return false;
      return k.flags === null ? undefined : !hasFlag(k.flags, "\\Seen");
    case "SIZE":
      if (k.size === null) return undefined;
      return key.op === "LARGER" ? k.size > key.size : k.size < key.size;
    case "DATE":
      if (key.sent || k.internalDate === null) return undefined;
      return compareDay(Math.floor(k.internalDate / DAY) * DAY, key.op, key.date);
    case "AGE": {
      if (k.internalDate === null) return undefined;
      const age = (k.now - k.internalDate) / 1000;
      return key.op === "OLDER" ? age >= key.seconds : age < key.seconds;
    }
    case "MODSEQ":
      return k.modSeq === undefined ? undefined : k.modSeq >= key.modSeq;
    case "HEADER":
    case "BODY":
    case "TEXT":
      return undefined;
    case "NOT": {
      const v = matchesKnown(key.key, k, saved);
      return v === undefined ? undefined : !v;
    }
    case "OR": {
      const a = matchesKnown(key.left, k, saved);
      if (a === true) return true;
      const b = matchesKnown(key.right, k, saved);
      if (b === true) return true;
      return a === undefined || b === undefined ? undefined : false;
    }
    case "AND": {
      let unknown = false;
      for (const sub of key.keys) {
        const v = matchesKnown(sub, k, saved);
        if (v === false) return false;
        if (v === undefined) unknown = true;
      }
      return unknown ? undefined : true;
    }
  }
}
