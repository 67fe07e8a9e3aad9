// Delivery status notifications (RFC 3464) for mail that could not be delivered: from
// MAILER-DAEMON, Auto-Submitted, multipart/report, so they pass every chatmail relay's inbound
// policy, with the original header block attached (never the encrypted body).

import { splitHeader } from "../mime/mod.ts";

export interface FailedRecipient {
  recipient: string;
  /** Enhanced status, e.g. "5.1.1"; "4.4.7" for expiry. */
  status: string;
  reason: string;
}

export function buildBounce(input: {
  domain: string;
  hostname: string;
  sender: string;
  original: Uint8Array;
  failed: FailedRecipient[];
  now: number;
  /** When the relay accepted the message (RFC 3464 §2.2.5 Arrival-Date). */
  arrivedAt: number;
}): Uint8Array {
  const boundary = `bounce-${crypto.randomUUID()}`;
  const rfc5322 = (t: number) => new Date(t).toUTCString().replace("GMT", "+0000");
  const date = rfc5322(input.now);
  const { headerEnd } = splitHeader(input.original);
  const headers = new TextDecoder().decode(input.original.subarray(0, headerEnd)).trimEnd();
  const clean = (s: string) => s.replace(/[\r\n]+/g, " ");
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.domain}>`,
    `To: <${input.sender}>`,
    "Subject: Undelivered Mail Returned to Sender",
    `Date: ${date}`,
    `Message-ID: <${crypto.randomUUID()}@${input.domain.replace(/^\[|\]$/g, "")}>`,
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    `This is the mail system at ${input.hostname}.`,
    "",
    "Your message could not be delivered to these recipients:",
    "",
    ...input.failed.map((f) => `<${f.recipient}>: ${clean(f.reason)}`),
    "",
    `--${boundary}`,
    "Content-Type: message/delivery-status",
    "",
    `Reporting-MTA: dns; ${input.hostname}`,
    `Arrival-Date: ${rfc5322(input.arrivedAt)}`,
    "",
    ...input.failed.flatMap((f) => [
      `Final-Recipient: rfc822; ${f.recipient}`,
      "Action: failed",
      `Status: ${f.status}`,
      `Diagnostic-Code: smtp; ${clean(f.reason)}`,
      "",
    ]),
    `--${boundary}`,
    "Content-Type: text/rfc822-headers",
    "",
    headers,
    "",
    `--${boundary}--`,
    "",
  ];
  return new TextEncoder().encode(lines.join("\r\n"));
}
