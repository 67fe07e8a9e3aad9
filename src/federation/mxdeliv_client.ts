// HTTPS delivery to another chatmail relay (POST /mxdeliv, chatmail-relay.md §5.5): envelope in
// X-Mail-From / X-Mail-To headers, the message as body, dot-stuffed as in SMTP DATA without the
// final "." (as the reference sends it and reads it). Any 2xx delivers every recipient. A
// refusal is an SMTP reply line in the body (filtermail answers 400, or 413 for size); anything
// else means the peer has no usable /mxdeliv and SMTP is tried instead.

import type { AttemptBudget } from "./deadlines.ts";
import type { HttpsPool } from "./https_client.ts";
import { bytesMessage, type OutgoingMessage, stuffedData } from "./outgoing_message.ts";

export interface MxdelivAttempt {
  /** Name for the certificate check, SNI and Host header. */
  host: string;
  /** Where to connect (the route's resolved address), so system DNS is never asked. */
  address: string;
  port: number;
  insecureTls: boolean;
  ca?: string[];
  sender: string;
  recipients: string[];
  data: Uint8Array | OutgoingMessage;
}

export type MxdelivResult =
  /** 2xx: delivered to every recipient. */
  | { kind: "accepted"; status: number; text: string }
  /** The peer's verdict on this message, as an SMTP reply (4xx temporary, 5xx permanent). */
  | { kind: "refused"; status: number; code: number; text: string }
  /** No /mxdeliv there (404, 405, a proxy's error page…): a transport failure for HTTPS. */
  | { kind: "unsupported"; status: number; text: string };

/** Reads a response; transport problems (connect, TLS, deadlines) reject with TransportError. */
export async function postMxdeliv(
  pool: HttpsPool,
  a: MxdelivAttempt,
  budget: AttemptBudget,
): Promise<MxdelivResult> {
  const headers: [string, string][] = [["Content-Type", "message/rfc822"]];
  if (a.sender) headers.push(["X-Mail-From", a.sender]);
  for (const r of a.recipients) headers.push(["X-Mail-To", r]);
  const r = await pool.post(
    { address: a.address, port: a.port, host: a.host, insecure: a.insecureTls, ca: a.ca },
    "/mxdeliv",
    headers,
    await stuffedData(a.data instanceof Uint8Array ? bytesMessage(a.data) : a.data),
    budget,
  );
  const text = r.text.length > 500 ? r.text.slice(0, 500) + "…" : r.text;
  if (r.status >= 200 && r.status < 300) return { kind: "accepted", status: r.status, text };
  // filtermail (and tern) refuse with 400, or 413 for the size, and an SMTP reply as the body.
  // Other statuses are the web server's own ("404 page not found" from Go's net/http, "500
  // Internal Server Error"): no verdict on the mail, whatever their text looks like.
  const reply = r.status === 400 || r.status === 413 ? /^([45]\d\d)[ -]/.exec(r.text) : null;
  if (reply) return { kind: "refused", status: r.status, code: Number(reply[1]), text };
  return { kind: "unsupported", status: r.status, text: text.replace(/\s+/g, " ") };
}
