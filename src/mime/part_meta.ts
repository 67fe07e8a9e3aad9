// The MIME metadata of one part, read from its header fields (RFC 2045 §5–§6, RFC 2183, RFC 3282):
// the one place that turns fields into a content type, transfer encoding and the other
// Content-* values, for the parser and for structures read back from the store.

import { headerValue } from "./headers.ts";
import { parseContentDisposition, parseContentType } from "./params.ts";
import type { ContentType, HeaderField, MimePart } from "./types.ts";

/** The default type of a part without a usable Content-Type (RFC 2045 §5.2). */
export function textPlain(): ContentType {
  return { type: "text", subtype: "plain", params: { charset: "us-ascii" } };
}

/** The default type of a part of a multipart/digest (RFC 2046 §5.1.5). */
export function messageRfc822(): ContentType {
  return { type: "message", subtype: "rfc822", params: {} };
}

/** Everything of a MimePart that its header fields decide. */
export type PartMeta = Omit<MimePart, "start" | "headerEnd" | "bodyStart" | "end" | "bodyLines">;

export function describePart(fields: HeaderField[], fallback: () => ContentType): PartMeta {
  const ctValue = headerValue(fields, "content-type");
  const cte = headerValue(fields, "content-transfer-encoding");
  const meta: PartMeta = {
    headers: fields,
    contentType: (ctValue !== undefined ? parseContentType(ctValue) : undefined) ?? fallback(),
    contentTransferEncoding: /^[^\s;(]*/.exec(cte ?? "")![0].toLowerCase() || "7bit",
    children: [],
  };
  const opt = (name: string) => headerValue(fields, name);
  const id = opt("content-id"), description = opt("content-description");
  const disposition = opt("content-disposition"), language = opt("content-language");
  const location = opt("content-location"), md5 = opt("content-md5");
  if (id !== undefined) meta.contentId = id;
  if (description !== undefined) meta.contentDescription = description;
  const parsedDisposition = disposition !== undefined
    ? parseContentDisposition(disposition)
    : undefined;
  if (parsedDisposition) meta.contentDisposition = parsedDisposition;
  if (language !== undefined) {
    meta.contentLanguage = language.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (location !== undefined) meta.contentLocation = location;
  if (md5 !== undefined) meta.contentMd5 = md5;
  return meta;
}

export function isIdentityEncoding(cte: string): boolean {
  return cte === "7bit" || cte === "8bit" || cte === "binary";
}

/** message/rfc822 and message/global bodies in an identity encoding are parsed as messages. */
export function isEncapsulating(meta: PartMeta): boolean {
  const ct = meta.contentType;
  return ct.type === "message" && (ct.subtype === "rfc822" || ct.subtype === "global") &&
    isIdentityEncoding(meta.contentTransferEncoding);
}
