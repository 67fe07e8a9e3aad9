// The parsed shape of an RFC 5322 / MIME message. Every offset points into the original message
// bytes so that callers (IMAP BODY[section]) can serve exact slices without re-encoding.

/** One header field. `start`/`end` delimit its raw bytes including folding and the line break. */
export interface HeaderField {
  /** Field name as written (trimmed); empty for a line that is not a header field. */
  name: string;
  /** Unfolded value with surrounding whitespace trimmed; encoded words are left as they are. */
  value: string;
  start: number;
  end: number;
}

export interface ContentType {
  /** Lowercased. */
  type: string;
  /** Lowercased. */
  subtype: string;
  /** Lowercased names; RFC 2231 continuations joined and decoded. */
  params: Record<string, string>;
}

export interface ContentDisposition {
  /** Lowercased, for example "attachment" or "inline". */
  value: string;
  params: Record<string, string>;
}

export interface MimePart {
  /** Start of this part's header block. */
  start: number;
  /** Just after the blank line that ends the header block (equal to `bodyStart`). */
  headerEnd: number;
  bodyStart: number;
  /** End of the body, exclusive; the line break before a following boundary is not included. */
  end: number;
  headers: HeaderField[];
  /**
   * The raw header block, from `start` on (a copy, at most the parser's header cap): the bytes
   * the fields' offsets point into, so ENVELOPE and HEADER.FIELDS need no read of the message.
   */
  rawHeader?: Uint8Array;
  contentType: ContentType;
  /** Lowercased; "7bit" when absent. */
  contentTransferEncoding: string;
  contentId?: string;
  contentDescription?: string;
  contentDisposition?: ContentDisposition;
  contentLanguage?: string[];
  contentLocation?: string;
  contentMd5?: string;
  /** Subparts of a multipart part, in order; empty for every other part. */
  children: MimePart[];
  /** Root part of the encapsulated message of a message/rfc822 or message/global part. */
  message?: MimePart;
  /** Lines in the body: line breaks, plus one for a final line without a break. */
  bodyLines: number;
}
