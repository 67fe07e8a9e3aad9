// Public surface of the MIME layer: pure parsing of RFC 5322/MIME messages on raw bytes (whole or
// streamed), shared by the encryption gate, the SMTP header rewriting and the IMAP FETCH encoder.

export type { ContentDisposition, ContentType, HeaderField, MimePart } from "./types.ts";
export { MAX_MIME_DEPTH, parseMessage } from "./parse_message.ts";
export {
  DEFAULT_MIME_LIMITS,
  type LeafBodySink,
  type LeafContext,
  type MimeLimits,
  type MimeStreamOptions,
  MimeStreamParser,
} from "./stream_parser.ts";
export type { Ambiguity, AmbiguityCode } from "./ambiguity.ts";
export { decodeStructure, encodeStructure, withTopHeader } from "./structure_codec.ts";
export { type StreamDecoder, streamDecoder } from "./transfer_stream.ts";
export { type PieceDecoder, tolerantDecoder } from "./tolerant_stream.ts";
export {
  type HeaderBlock,
  headerValue,
  headerValues,
  type NewHeaderField,
  parseHeaderBlock,
  rewriteHeaders,
  splitHeader,
} from "./headers.ts";
export { parseContentDisposition, parseContentType, parseParams } from "./params.ts";
export {
  type Address,
  type AddressGroup,
  flattenAddresses,
  formatAddress,
  type Mailbox,
  parseAddressList,
} from "./address.ts";
export { decodeEncodedWords } from "./encoded_words.ts";
export { BYTE_TEXT_MIN, byteText, countChar } from "./byte_text.ts";
export {
  decodeBase64,
  decodeBody,
  decodeQuotedPrintable,
  decodeText,
} from "./transfer_encoding.ts";
