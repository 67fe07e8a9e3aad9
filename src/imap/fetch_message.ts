// FETCH data of one message without holding it (issue 16): BODY[]/BODY[section]/BINARY/RFC822*
// are byte ranges of the stored message, read and written a slice at a time, each write awaited
// (back-pressure from the client's socket); ENVELOPE, BODY and BODYSTRUCTURE come from the
// structure stored with the body, so nothing is parsed per FETCH. A body stored without one (from
// before structures were kept) is parsed once, from ranged reads, and its structure kept.
// Small messages are read whole, many per store round trip.

import {
  decodeStructure,
  encodeStructure,
  type MimePart,
  MimeStreamParser,
  parseMessage,
  tolerantDecoder,
} from "../mime/mod.ts";
import { ConnectionClosedError, loopTurn } from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MessageRecord } from "../store/types.ts";
import type { ImapMailboxes, SmallBody, StoredBody } from "./backend.ts";
import type { SessionContext } from "./session.ts";
import type { FetchItem, Section } from "./types.ts";
import { imapDate, ImapNo, type Piece } from "./responses.ts";
import {
  binaryRange,
  renderBodyStructure,
  renderEnvelope,
  sectionRange,
  UNKNOWN_CTE,
} from "./fetch_render.ts";

/** Bytes per read of a stored body, and per awaited socket write. */
export const SLICE = 128 * 1024;
/** Messages whose small bodies are read in one round trip. */
const BATCH = 50;

/** Bytes [start, end) of the stored message, sent as they are read. */
interface Span {
  kind: "span";
  start: number;
  end: number;
}

/** A part's content with its transfer encoding removed: `length` bytes after the first `skip`. */
interface Decoded {
  kind: "decoded";
  start: number;
  end: number;
  cte: string;
  skip: number;
  length: number;
}

/** What a FETCH response is made of: text and bytes, and ranges still to be read. */
export type FetchPiece = Piece | Span | Decoded;

/** One message's bytes during a FETCH. */
export class FetchSource {
  #tree: Promise<MimePart> | null = null;

  constructor(
    readonly bodyId: number,
    readonly size: number,
    /** The whole message, when it is small. */
    readonly bytes: Uint8Array | null,
    readonly structure: Uint8Array | null,
    readonly reader: StoredBody | null,
    readonly mailboxes: ImapMailboxes,
    readonly log?: Logger,
  ) {}

  read(offset: number, length: number): Promise<Uint8Array> {
    if (this.bytes) return Promise.resolve(this.bytes.subarray(offset, offset + length));
    return this.reader!.read(offset, length);
  }

  /** The part tree: the stored structure, or the message parsed once (and the structure kept). */
  tree(): Promise<MimePart> {
    return this.#tree ??= this.#loadTree();
  }

  async #loadTree(): Promise<MimePart> {
    if (this.structure) {
      try {
        return decodeStructure(this.structure);
      } catch (err) {
        this.log?.debug("fetch: unreadable structure blob, parsing the message", {
          body: this.bodyId,
          error: String(err),
        });
      }
    }
    const tree = this.bytes ? parseMessage(this.bytes) : await this.#parseRanges();
    // Best effort, not awaited: the next FETCH reads it; a failure only means parsing again.
    this.mailboxes.setBodyStructure(this.bodyId, encodeStructure(tree)).catch((err) =>
      this.log?.debug("fetch: keeping a parsed structure failed", {
        body: this.bodyId,
        error: String(err),
      })
    );
    return tree;
  }

  async #parseRanges(): Promise<MimePart> {
    const parser = new MimeStreamParser();
    for (let off = 0; off < this.size; off += SLICE) {
      const b = await this.read(off, SLICE);
      for (let i = 0; i < b.length; i += 16 * 1024) {
        parser.push(b.subarray(i, i + 16 * 1024));
        await loopTurn();
      }
    }
    return parser.end();
  }

  close(): Promise<void> {
    return this.reader?.close() ?? Promise.resolve();
  }
}

/**
 * Opens the bodies of a FETCH's messages in order: the small ones among the next BATCH records
 * are read in one store round trip, the others are opened for ranged reads.
 */
export class FetchBodies {
  #window = new Map<number, SmallBody>();
  #windowEnd = -1;

  constructor(readonly mailboxes: ImapMailboxes, readonly log?: Logger) {}

  /** The body of records[i], or null when it is gone. Close it after use. */
  async open(records: readonly MessageRecord[], i: number): Promise<FetchSource | null> {
    if (i >= this.#windowEnd || i < this.#windowEnd - BATCH) {
      const ids = records.slice(i, i + BATCH).map((r) => r.bodyId);
      this.#window = await this.mailboxes.readSmallBodies(ids);
      this.#windowEnd = i + BATCH;
    }
    const rec = records[i];
    const small = this.#window.get(rec.bodyId);
    if (small) {
      return new FetchSource(
        rec.bodyId,
        small.bytes.length,
        small.bytes,
        small.structure,
        null,
        this.mailboxes,
        this.log,
      );
    }
    const reader = await this.mailboxes.openBody(rec.bodyId);
    if (!reader) return null;
    return new FetchSource(
      rec.bodyId,
      reader.size,
      null,
      reader.structure,
      reader,
      this.mailboxes,
      this.log,
    );
  }
}

/** Messages of one command named in its log line; the count says how many there were. */
const UNREADABLE_NAMED = 20;

/**
 * The messages of one command (FETCH, SEARCH) whose stored body could not be read: a damaged
 * body file, or the store failing. Each is left out, the others are still served, the command
 * ends NO [SERVERBUG] naming how many, and the log gets one line for them all: a store that fails
 * for every message of a FETCH 1:* is one error with a count, not one per message.
 */
export class UnreadableBodies {
  #uids = new Set<number>();
  #named: { uid: number; body: number }[] = [];
  #first: unknown = null;

  constructor(readonly command: string) {}

  get count(): number {
    return this.#uids.size;
  }

  /** Notes a message left out; false, for `open(...).catch(...)`. */
  note(rec: MessageRecord, err: unknown): false {
    if (this.#uids.has(rec.uid)) return false;
    this.#uids.add(rec.uid);
    this.#first ??= err;
    if (this.#named.length < UNREADABLE_NAMED) this.#named.push({ uid: rec.uid, body: rec.bodyId });
    return false;
  }

  /** The one log line (call it however the command ends). */
  log(log: Logger | undefined): void {
    if (!this.count) return;
    log?.error(`${this.command}: stored bodies cannot be read`, {
      messages: this.count,
      uids: this.#named.map((n) => n.uid).join(","),
      bodies: this.#named.map((n) => n.body).join(","),
      error: String(this.#first),
    });
  }

  /** The command's NO when a message was left out. */
  check(): void {
    const n = this.count;
    if (!n) return;
    throw new ImapNo(
      `Internal error: ${n} message${n > 1 ? "s" : ""} could not be read`,
      "SERVERBUG",
    );
  }
}

/** `{n}` and the range, with a `<offset.length>` partial applied (RFC 9051 §6.4.5). */
function literalOf(
  at: { start: number; end: number } | { bytes: Uint8Array } | null,
  partial: { offset: number; length: number } | undefined,
  prefix = "",
): FetchPiece[] {
  if (!at) return [`${prefix}{0}\r\n`];
  if ("bytes" in at) {
    let b = at.bytes;
    if (partial) {
      const s = Math.min(Math.max(0, partial.offset), b.length);
      b = b.subarray(s, Math.min(b.length, s + Math.max(0, partial.length)));
    }
    return [`${prefix}{${b.length}}\r\n`, b];
  }
  let { start, end } = at;
  if (partial) {
    start = Math.min(start + Math.max(0, partial.offset), end);
    end = Math.min(end, start + Math.max(0, partial.length));
  }
  return [`${prefix}{${end - start}}\r\n`, { kind: "span", start, end }];
}

const HEADER: Section = { part: [], specifier: "HEADER" };
const TEXT: Section = { part: [], specifier: "TEXT" };

/** The decoded length of a transfer-encoded range (one pass, a slice at a time). */
async function decodedSize(src: FetchSource, start: number, end: number, cte: string) {
  const d = tolerantDecoder(cte)!;
  let n = 0;
  for (let off = start; off < end; off += SLICE) {
    n += d.push(await src.read(off, Math.min(SLICE, end - off))).length;
  }
  return n + d.end().length;
}

/** BINARY[part]: where its content lies and how long it is once decoded. */
async function binaryContent(src: FetchSource, part: readonly number[]) {
  const whole = part.length === 0;
  const r = whole ? { start: 0, end: src.size, decode: null } : binaryRange(await src.tree(), part);
  if (r === UNKNOWN_CTE) throw new ImapNo("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE");
  if (!r) return null;
  const length = r.decode ? await decodedSize(src, r.start, r.end, r.decode) : r.end - r.start;
  return { ...r, length };
}

/** The FETCH items answered from the message's record alone (no content read). */
export const META_ITEMS: ReadonlySet<string> = new Set([
  "FLAGS",
  "UID",
  "INTERNALDATE",
  "RFC822.SIZE",
  "MODSEQ",
]);

/**
 * One item of META_ITEMS, synchronously: a FETCH of flags over a whole mailbox renders each
 * message as one string, with no promise or array per item. `flags` is the flag list as shown
 * (space-separated, \Recent included where it applies).
 */
export function renderMetaItem(kind: string, rec: MessageRecord, flags: string): string {
  switch (kind) {
    case "FLAGS":
      return `FLAGS (${flags})`;
    case "UID":
      return `UID ${rec.uid}`;
    case "INTERNALDATE":
      return `INTERNALDATE "${imapDate(rec.internalDate)}"`;
    case "RFC822.SIZE":
      return `RFC822.SIZE ${rec.size}`;
    case "MODSEQ":
      return `MODSEQ (${rec.modSeq})`;
    default:
      throw new Error(`renderMetaItem: ${kind} needs the message's content`);
  }
}

/** The response data of one FETCH item; ranges of the body are left to writeFetch. */
export async function renderFetchItem(
  item: FetchItem,
  rec: MessageRecord,
  src: FetchSource | null,
  flags: readonly string[],
): Promise<FetchPiece[]> {
  switch (item.kind) {
    case "FLAGS":
    case "UID":
    case "INTERNALDATE":
    case "RFC822.SIZE":
    case "MODSEQ":
      return [renderMetaItem(item.kind, rec, flags.join(" "))];
    case "ENVELOPE":
      return ["ENVELOPE ", ...renderEnvelope(await src!.tree(), src!.bytes ?? undefined)];
    case "BODYSTRUCTURE":
      return [
        "BODYSTRUCTURE ",
        ...renderBodyStructure(await src!.tree(), src!.bytes ?? undefined, true),
      ];
    case "BODY":
      return ["BODY ", ...renderBodyStructure(await src!.tree(), src!.bytes ?? undefined, false)];
    case "RFC822":
      return literalOf({ start: 0, end: src!.size }, undefined, "RFC822 ");
    case "RFC822.HEADER":
      return literalOf(sectionRange(await src!.tree(), HEADER), undefined, "RFC822.HEADER ");
    case "RFC822.TEXT":
      return literalOf(sectionRange(await src!.tree(), TEXT), undefined, "RFC822.TEXT ");
    case "BODY[]": {
      // BODY[] is the stored message itself: no structure needed.
      const whole = item.section.part.length === 0 && item.section.specifier === "";
      const at = whole
        ? { start: 0, end: src!.size }
        : sectionRange(await src!.tree(), item.section);
      return literalOf(at, item.partial, `${item.label} `);
    }
    case "BINARY": {
      const c = await binaryContent(src!, item.part);
      if (!c) return [`${item.label} ~{0}\r\n`];
      // RFC 3516: binary content is sent as literal8.
      const skip = Math.min(Math.max(0, item.partial?.offset ?? 0), c.length);
      const length = Math.min(c.length - skip, Math.max(0, item.partial?.length ?? c.length));
      const piece: FetchPiece = c.decode
        ? { kind: "decoded", start: c.start, end: c.end, cte: c.decode, skip, length }
        : { kind: "span", start: c.start + skip, end: c.start + skip + length };
      return [`${item.label} ~{${length}}\r\n`, piece];
    }
    case "BINARY.SIZE": {
      const c = await binaryContent(src!, item.part);
      return [`${item.label} ${c ? c.length : 0}`];
    }
  }
}

/**
 * Writes a FETCH response's pieces. Ranges of a small message go out from memory; those of a
 * large one are read a slice at a time, each slice written and awaited before the next read, so
 * the connection holds one slice whatever the message size.
 */
export async function writeFetch(
  ctx: SessionContext,
  pieces: readonly FetchPiece[],
  src: FetchSource | null,
): Promise<void> {
  for (const p of pieces) {
    if (typeof p === "string" || p instanceof Uint8Array) ctx.out(p);
    else if (src?.bytes && p.kind === "span") ctx.out(src.bytes.subarray(p.start, p.end));
    else await streamRange(ctx, p, src!);
  }
}

async function streamRange(ctx: SessionContext, p: Span | Decoded, src: FetchSource) {
  const large = src.bytes === null;
  if (large) await ctx.flush();
  const decoder = p.kind === "decoded" ? tolerantDecoder(p.cte)! : null;
  let skip = p.kind === "decoded" ? p.skip : 0;
  let left = p.kind === "decoded" ? p.length : p.end - p.start;
  const send = async (b: Uint8Array) => {
    if (skip > 0) {
      const n = Math.min(skip, b.length);
      skip -= n;
      b = b.subarray(n);
    }
    if (b.length > left) b = b.subarray(0, left);
    if (b.length === 0) return;
    left -= b.length;
    if (!large) return ctx.out(b);
    // After what the session queued before it (flushed above), straight to the connection:
    // a slice read for this write is not copied again into the session's output buffer.
    await ctx.conn.write(b);
  };
  for (let off = p.start; off < p.end && left > 0; off += SLICE) {
    let raw: Uint8Array;
    try {
      raw = await src.read(off, Math.min(SLICE, p.end - off));
    } catch (err) {
      // A literal was promised and cannot be finished: the connection cannot go on.
      ctx.log?.error("fetch: reading a stored body failed mid-response", {
        body: src.bodyId,
        error: String(err),
      });
      await ctx.conn.close().catch(() => {});
      throw new ConnectionClosedError("the stored body could not be read");
    }
    await send(decoder ? decoder.push(raw) : raw);
  }
  if (decoder && left > 0) await send(decoder.end());
  if (left > 0) {
    // The body is shorter than its record: pad so the literal stays well-formed, and say so.
    ctx.log?.error("fetch: a stored body is shorter than its structure", { body: src.bodyId });
    await send(new Uint8Array(left).fill(32));
  }
}
