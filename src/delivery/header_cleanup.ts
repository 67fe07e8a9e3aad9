// Privacy header rewriting, as the reference relay's Postfix cleanup maps (chatmail-relay.md §5.3):
// on submission the client's traces go and the Subject becomes "[...]"; on storage the transport
// and authentication traces go, so stored mail carries no Received/DKIM/Authentication-Results.

import { type HeaderField, type NewHeaderField, rewriteHeaders } from "../mime/mod.ts";

const SUBMISSION_DROP = new Set(["received", "x-originating-ip", "x-mailer", "user-agent"]);
const STORAGE_DROP = new Set(["dkim-signature", "authentication-results", "received"]);

/** Submission: strip client traces, replace every Subject with "[...]". */
export function cleanSubmittedHeaders(message: Uint8Array): Uint8Array {
  return rewriteHeaders(message, (fields) => {
    const out: (HeaderField | NewHeaderField)[] = [];
    for (const f of fields) {
      const name = f.name.toLowerCase();
      if (SUBMISSION_DROP.has(name)) continue;
      out.push(name === "subject" ? { name: "Subject", value: "[...]" } : f);
    }
    return out;
  });
}

/** Local delivery: strip transport and authentication traces from the stored copy. */
export function cleanStoredHeaders(message: Uint8Array): Uint8Array {
  return rewriteHeaders(
    message,
    (fields) => fields.filter((f) => !STORAGE_DROP.has(f.name.toLowerCase())),
  );
}
