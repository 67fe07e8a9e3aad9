// parseMessage(): the whole-buffer form of the streaming MIME reader, so that every caller (the
// gate, IMAP FETCH, APPEND) reads a message the same way.

import { MimeStreamParser } from "./stream_parser.ts";
import type { MimePart } from "./types.ts";

export { MAX_MIME_DEPTH } from "./stream_parser.ts";

/** Parses a whole message. Never throws: malformed input yields a best-effort tree. */
export function parseMessage(bytes: Uint8Array): MimePart {
  const p = new MimeStreamParser();
  p.push(bytes);
  return p.end();
}
