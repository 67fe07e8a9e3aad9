// Privacy header rewriting, as the reference relay's Postfix cleanup maps (chatmail-relay.md §5.3):
// on submission the client's traces go and the Subject becomes "[...]"; on storage the transport
// and authentication traces go, so stored mail carries no Received/DKIM/Authentication-Results.

import { type HeaderField, type NewHeaderField, rewriteHeaders } from "../mime/mod.ts";

const SUBMISSION_DROP = new Set(["received", "x-originating-ip", "x-mailer", "user-agent"]);
const STORAGE_DROP = new Set(["dkim-signature", "authentication-results", "received"]);

/** Submission: strip client traces, replace every Subject with "[...]". */
export function cleanSubmittedHeaders(message: Uint8Array): Uint8Array {
  return rewriteHeaders(message, (fields) => submitted(fields, false));
}

/**
 * A submission's stored copy in one rewrite: the same bytes as
 * cleanStoredHeaders(cleanSubmittedHeaders(message)), without reading the header twice. (The
 * second reading finds the fields the first one kept, byte for byte, and the new Subject, which
 * it keeps.)
 */
export function cleanSubmittedForStorage(message: Uint8Array): Uint8Array {
  return rewriteHeaders(message, (fields) => submitted(fields, true));
}

function submitted(fields: readonly HeaderField[], stored: boolean) {
  const out: (HeaderField | NewHeaderField)[] = [];
  for (const f of fields) {
    const name = f.name.toLowerCase();
    if (SUBMISSION_DROP.has(name) || (stored && STORAGE_DROP.has(name))) continue;
    out.push(name === "subject" ? { name: "Subject", value: "[...]" } : f);
  }
  return out;
}

/** Local delivery: strip transport and authentication traces from the stored copy. */
export function cleanStoredHeaders(message: Uint8Array): Uint8Array {
  return rewriteHeaders(
    message,
    (fields) => fields.filter((f) => !STORAGE_DROP.has(f.name.toLowerCase())),
  );
}
