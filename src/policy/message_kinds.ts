// Which cleartext-or-encrypted shapes a message has (filtermail message.rs): PGP/MIME encryption,
// the Secure-Join request, the self-sent Autocrypt Setup Message and mailer-daemon reports.

import {
  decodeBody,
  decodeEncodedWords,
  decodeText,
  headerValue,
  type MimePart,
} from "../mime/mod.ts";
import { checkArmoredPayload } from "./openpgp_packets.ts";

function mimeType(p: MimePart): string {
  return `${p.contentType.type}/${p.contentType.subtype}`;
}

/**
 * RFC 3156 PGP/MIME as Delta Chat writes it: multipart/encrypted with exactly two leaf parts,
 * "Version: 1" then the armored payload. Stricter than filtermail, which also passes a
 * multipart/encrypted holding only the first part.
 */
export function isEncryptedMessage(
  root: MimePart,
  bytes: Uint8Array,
  direction: "outgoing" | "incoming",
): boolean {
  if (mimeType(root) !== "multipart/encrypted" || root.children.length !== 2) return false;
  const [control, payload] = root.children;
  if (control.contentType.type === "multipart" || payload.contentType.type === "multipart") {
    return false;
  }
  return mimeType(control) === "application/pgp-encrypted" &&
    decodeText(control, bytes).trim() === "Version: 1" &&
    mimeType(payload) === "application/octet-stream" &&
    checkArmoredPayload(decodeBody(payload, bytes), direction);
}

const SECURE_JOIN_BODIES = ["secure-join: vc-request", "secure-join: vg-request"];

/** The first Secure-Join step, which may travel in cleartext: one text/plain part naming it. */
export function isSecureJoinRequest(root: MimePart, bytes: Uint8Array): boolean {
  const step = headerValue(root, "secure-join");
  if (step !== "vc-request" && step !== "vg-request") return false;
  if (root.contentType.type !== "multipart" || root.children.length !== 1) return false;
  const part = root.children[0];
  if (part.contentType.type === "multipart" || mimeType(part) !== "text/plain") return false;
  return SECURE_JOIN_BODIES.includes(decodeText(part, bytes).trim().toLowerCase());
}

/** An Autocrypt Setup Message the sender mails to themselves (one recipient: the From address). */
export function isSelfSentAutocryptSetup(
  root: MimePart,
  fromAddress: string,
  recipients: readonly string[],
): boolean {
  return recipients.length === 1 && normalizeEnvelopeAddress(recipients[0]) === fromAddress &&
    decodeEncodedWords(headerValue(root, "subject") ?? "").trim() === "Autocrypt Setup Message" &&
    mimeType(root) === "multipart/mixed";
}

/** A delivery report from a mailer daemon: Auto-Submitted set, From mailer-daemon@, multipart/report. */
export function isMailerDaemonReport(root: MimePart, fromAddress: string): boolean {
  return (headerValue(root, "auto-submitted") ?? "") !== "" &&
    fromAddress.startsWith("mailer-daemon@") && mimeType(root) === "multipart/report";
}

/** Envelope addresses compare lowercased and without angle brackets. */
export function normalizeEnvelopeAddress(a: string): string {
  const t = a.trim();
  return (t.startsWith("<") && t.endsWith(">") ? t.slice(1, -1).trim() : t).toLowerCase();
}
