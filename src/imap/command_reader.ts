// Reads one complete IMAP command: the command line plus every literal it announces (RFC 9051
// §4.3, §7.5; LITERAL+ RFC 7888; literal8 RFC 3516). A literal over the limit is never held in
// memory: a synchronizing one is refused before the client sends it, a non-synchronizing one is
// read and dropped in chunks so the next command starts where the client thinks it does.
// APPEND's message literal can be streamed instead of held: given a sink, its bytes go there
// chunk by chunk as they arrive (each taken before the next is read), and the command carries an
// empty literal in its place.

import { ConnectionClosedError, LineTooLongError } from "../net/connection.ts";

/** What the reader needs of a connection (structurally a subset of net's Connection). */
export interface CommandConnection {
  /** The next line (with or without its CRLF/LF; both are accepted); null at end of stream. */
  readLine(maxBytes: number): Promise<Uint8Array | null>;
  /** Exactly n bytes; null when the stream ends first. */
  readExact(n: number): Promise<Uint8Array | null>;
  /** Whatever is buffered, or the next chunk; null at end of stream. */
  readChunk(): Promise<Uint8Array | null>;
  /** Puts bytes back in front of the read buffer. */
  unread(bytes: Uint8Array): void;
  /** Exactly n bytes handed to onChunk as they arrive; false when the stream ends first. */
  readExactChunks(
    n: number,
    onChunk: (chunk: Uint8Array) => void | Promise<void>,
  ): Promise<boolean>;
  write(data: string | Uint8Array): Promise<void>;
}

/** Takes a streamed literal's bytes in order; resolves when it may be given more. */
export interface LiteralSink {
  write(chunk: Uint8Array): Promise<void>;
}

/** Text segments (UTF-8 decoded, literal markers and line end removed) alternating with literals. */
export interface RawCommand {
  segments: (string | Uint8Array)[];
  /** The sink APPEND's message literal was streamed into (its segment is then empty). */
  streamed?: LiteralSink;
}

/**
 * Offers a sink for APPEND's message literal of `size` bytes (`binary`: a literal8), or
 * undefined to read it into memory as any other literal.
 */
export type AppendSink = (size: number, binary: boolean) => LiteralSink | undefined;

export interface ReadLimits {
  maxLineBytes: number;
  maxLiteralBytes: number;
  /** For APPEND's message literal. */
  maxAppendLiteralBytes: number;
  /**
   * All lines and literals of one command held in memory: everything but APPEND's message when
   * it streams into the sink (as Dovecot's imap_max_line_length counts a command's literals).
   * Default: the larger literal limit plus 64 lines.
   */
  maxCommandBytes?: number;
  /**
   * Skip a refused non-synchronizing literal (and the rest of its command) so the next command
   * can be read (default). Before login nothing is skipped: the session ends instead.
   */
  skipRefused?: boolean;
}

/** A literal (or the command as a whole) over its limit; answer `<tag> NO [TOOBIG]`. */
export class LiteralTooLargeError extends Error {
  constructor(
    /** The command's tag, when the first line has one. */
    readonly tag: string | null,
    /** The announced literal size in bytes. */
    readonly size: number,
    readonly limit: number,
    /** True when the client announced `{n}` and now waits for our answer instead of sending. */
    readonly synchronizing: boolean,
    /**
     * A non-synchronizing literal too large even to skip (over twice the limit): the stream is
     * out of sync and the connection must end.
     */
    readonly fatal = false,
  ) {
    super(`Literal of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = "LiteralTooLargeError";
  }
}

/**
 * A line of a command over the line limit, dropped by the connection (the stream is in sync
 * unless `fatal`). `tag`: the command's tag when its start shows one, so the client waiting for
 * that tag gets its answer.
 */
export class CommandLineTooLongError extends LineTooLongError {
  constructor(cause: LineTooLongError, readonly tag: string | null) {
    super(cause.limitBytes, cause.fatal, cause.head);
  }
}

export const CONTINUE_LITERAL = "+ Ready for literal data\r\n";
/** A refused non-synchronizing literal larger than this is not skipped: the connection ends. */
const DRAIN_MAX = 64 * 1024 * 1024;
// `{n}`, `{n+}` and literal8 `~{n}` at the very end of a line (RFC 9051 §9 "literal").
const LITERAL_MARKER = /~?\{([0-9]{1,20})(\+?)\}$/;
// Tag: ASTRING-CHARs except "+" (RFC 9051 §9 "tag"), followed by SP.
// deno-lint-ignore no-control-regex -- CTLs are atom-specials
const TAG = /^([^(){ %*"\\+\x00-\x1f\x7f-\uffff]+) /;

const decoder = new TextDecoder();

function stripLineEnd(line: Uint8Array): Uint8Array {
  let end = line.length;
  if (end > 0 && line[end - 1] === 10) {
    end--;
    if (end > 0 && line[end - 1] === 13) end--;
  }
  return line.subarray(0, end);
}

interface Marker {
  size: number;
  sync: boolean;
  /** literal8 (`~{n}`). */
  binary: boolean;
  text: string;
}

function splitMarker(line: string): Marker | null {
  const m = LITERAL_MARKER.exec(line);
  if (!m) return null;
  return {
    size: Number(m[1]),
    sync: m[2] !== "+",
    binary: m[0].startsWith("~"),
    text: line.slice(0, m.index),
  };
}

/** The tag of a command line, when it has one; used to answer errors found before parsing. */
export function tagOf(firstLine: string): string | null {
  return TAG.exec(firstLine)?.[1] ?? null;
}

/** Whether the command is APPEND (second word, or third after UID). */
function isAppend(firstLine: string): boolean {
  const words = firstLine.split(" ", 4).map((w) => w.toUpperCase());
  const verb = words[1] === "UID" ? words[2] : words[1];
  return verb === "APPEND";
}

/**
 * Reads one command. Returns null at end of stream before a command starts. Throws
 * LiteralTooLargeError (stream still in sync), CommandLineTooLongError, or
 * ConnectionClosedError when the stream ends inside a command.
 */
export async function readCommand(
  conn: CommandConnection,
  limits: ReadLimits,
  appendSink?: AppendSink,
  /** Called once the first line of a command has arrived. */
  onStart?: () => void,
): Promise<RawCommand | null> {
  const maxTotal = limits.maxCommandBytes ??
    Math.max(limits.maxLiteralBytes, limits.maxAppendLiteralBytes) + 64 * limits.maxLineBytes;
  const segments: (string | Uint8Array)[] = [];
  let streamed: LiteralSink | undefined;
  let total = 0;
  let first: string | null = null;
  while (true) {
    let bytes: Uint8Array | null;
    try {
      bytes = await conn.readLine(limits.maxLineBytes);
    } catch (e) {
      if (!(e instanceof LineTooLongError)) throw e;
      throw new CommandLineTooLongError(e, tagOf(first ?? decoder.decode(e.head)));
    }
    if (bytes === null) {
      if (first === null) return null;
      throw new ConnectionClosedError("Connection closed in the middle of a command");
    }
    const body = stripLineEnd(bytes);
    // Blank lines between commands carry nothing; skip them rather than answer BAD.
    if (first === null && body.length === 0) continue;
    total += body.length + 2;
    const line = decoder.decode(body);
    if (first === null) onStart?.();
    first ??= line;
    const marker = splitMarker(line);
    if (!marker) {
      segments.push(line);
      return streamed ? { segments, streamed } : { segments };
    }
    segments.push(marker.text);
    const limit = isAppend(first) ? limits.maxAppendLiteralBytes : limits.maxLiteralBytes;
    // APPEND's message is its literal after the mailbox name (which may itself be the first
    // literal: "tag APPEND {5}"). Streamed, it is not held, so only its own limit applies;
    // every other literal counts toward the command's total.
    const sink = marker.size <= limit && appendSink && isAppend(first) &&
        !(segments.length === 1 && marker.text.trim().split(/\s+/).length < 3)
      ? appendSink(marker.size, marker.binary)
      : undefined;
    const overTotal = !sink && total + marker.size > maxTotal;
    if (marker.size > limit || overTotal) {
      const err = new LiteralTooLargeError(
        tagOf(first),
        marker.size,
        overTotal ? maxTotal : limit,
        marker.sync,
      );
      // A synchronizing literal is not sent until we say so: the tagged answer refuses it. A
      // non-synchronizing one is skipped to stay in sync, unless it is absurdly large.
      if (!marker.sync && limits.skipRefused !== false) {
        if (marker.size > Math.max(2 * maxTotal, DRAIN_MAX)) {
          throw new LiteralTooLargeError(err.tag, err.size, err.limit, false, true);
        }
        await drainCommand(conn, marker.size, limits.maxLineBytes);
      }
      throw err;
    }
    if (marker.sync) await conn.write(CONTINUE_LITERAL);
    if (sink) {
      await streamLiteral(conn, marker.size, sink);
      segments.push(new Uint8Array(0));
      streamed = sink;
      continue;
    }
    const data = await conn.readExact(marker.size);
    if (data === null) {
      throw new ConnectionClosedError("Connection closed in the middle of a literal");
    }
    segments.push(data);
    total += marker.size;
  }
}

/** Passes n bytes to the sink as they arrive, one chunk at a time. */
async function streamLiteral(conn: CommandConnection, n: number, sink: LiteralSink) {
  let left = n;
  while (left > 0) {
    const chunk = await conn.readChunk();
    if (chunk === null) {
      throw new ConnectionClosedError("Connection closed in the middle of a literal");
    }
    if (chunk.length > left) conn.unread(chunk.subarray(left));
    const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= piece.length;
    await sink.write(piece);
  }
}

/** Reads and drops n bytes without holding more than one chunk. */
async function discard(conn: CommandConnection, n: number): Promise<void> {
  if (!(await conn.readExactChunks(n, () => {}))) {
    throw new ConnectionClosedError("Connection closed in the middle of a literal");
  }
}

/**
 * Drops a non-synchronizing literal and the rest of its command: following lines, and their
 * non-synchronizing literals. Stops at a synchronizing literal, whose client waits for the
 * tagged answer we are about to send.
 */
async function drainCommand(conn: CommandConnection, size: number, maxLine: number) {
  await discard(conn, size);
  while (true) {
    let bytes: Uint8Array | null;
    try {
      bytes = await conn.readLine(maxLine);
    } catch (e) {
      // The connection already skipped to the end of the overlong line.
      if (e instanceof LineTooLongError) return;
      throw e;
    }
    if (bytes === null) return;
    const marker = splitMarker(decoder.decode(stripLineEnd(bytes)));
    if (!marker || marker.sync) return;
    await discard(conn, marker.size);
  }
}
