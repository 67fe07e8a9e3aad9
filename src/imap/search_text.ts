// BODY and TEXT search keys on a large stored message without holding it: each text/* leaf part
// is read a slice at a time from its byte range (the part tree says where), its transfer encoding
// and charset decoded in pieces, mapped with i;unicode-casemap (casemap.ts) and scanned for every
// needle of the command at once. Only the last (longest needle - 1) characters of a slice are
// kept for the next one, so a match across two slices is found and memory stays one slice.
// The result equals wholeMessage(bytes).bodyHas (search_eval.ts) on the same message: the map is
// per code point and the decoders give the same output whatever the split.

import { type MimePart, tolerantDecoder } from "../mime/mod.ts";
import { unicodeCasemap } from "./casemap.ts";

/** Bytes per read. */
export const TEXT_SLICE = 128 * 1024;

export interface RangeSource {
  read(offset: number, length: number): Promise<Uint8Array>;
}

const EMPTY = new Uint8Array(0);

/** The charset decoder decodeCharset (mime/bytes.ts) would use, in streaming form. */
function charsetDecoder(charset: string | undefined): TextDecoder {
  const label = (charset ?? "utf-8").trim().toLowerCase();
  if (label === "us-ascii" || label === "ascii" || label === "utf-8" || label === "utf8") {
    return new TextDecoder("utf-8");
  }
  try {
    return new TextDecoder(label);
  } catch {
    return new TextDecoder("latin1"); // unknown label: TextDecoder throws RangeError
  }
}

/**
 * Which of `needles` (already mapped with unicodeCasemap) occur in the decoded text of one of
 * `parts`. `pause` runs after every slice (the session lets others run there).
 */
export async function findInTextParts(
  src: RangeSource,
  parts: readonly MimePart[],
  needles: ReadonlySet<string>,
  pause: () => Promise<void>,
  slice = TEXT_SLICE,
): Promise<Set<string>> {
  const found = new Set<string>();
  if (parts.length === 0) return found;
  let keep = 0;
  for (const n of needles) {
    // The empty string is in every text, also an empty one.
    if (n === "") found.add(n);
    keep = Math.max(keep, n.length - 1);
  }
  for (const p of parts) {
    if (found.size === needles.size) break;
    const transfer = tolerantDecoder(p.contentTransferEncoding);
    const text = charsetDecoder(p.contentType.params.charset);
    let tail = "";
    const feed = (s: string) => {
      if (s === "") return;
      const mapped = tail + unicodeCasemap(s);
      for (const n of needles) if (!found.has(n) && mapped.includes(n)) found.add(n);
      tail = keep ? mapped.slice(Math.max(0, mapped.length - keep)) : "";
    };
    for (let off = p.bodyStart; off < p.end && found.size < needles.size; off += slice) {
      const raw = await src.read(off, Math.min(slice, p.end - off));
      if (raw.length === 0) break;
      feed(text.decode(transfer ? transfer.push(raw) : raw, { stream: true }));
      await pause();
    }
    feed(text.decode(transfer ? transfer.end() : EMPTY));
  }
  return found;
}
