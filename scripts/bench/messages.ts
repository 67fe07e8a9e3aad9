// Benchmark messages: one real PGP/MIME message per size (encrypted once with openpgp), split into
// a header template (From, To and Message-ID change per message) and a constant body.

import { armoredPayload, pgpMime } from "../../tests/support/messages.ts";

const enc = new TextEncoder();

export interface MessageTemplate {
  /** Approximate size of one message on the wire, bytes. */
  size: number;
  /** Header block with the placeholders FROMADDR, TOADDR and MSGID. */
  head: string;
  /** Everything after the header block, ending in "\r\n.\r\n" (the SMTP end of data). */
  smtpBody: Uint8Array;
  /** The same without the terminating dot (for IMAP APPEND). */
  rawBody: Uint8Array;
}

function randomText(chars: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,\n";
  const bytes = new Uint8Array(chars);
  for (let i = 0; i < chars; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  let s = "";
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

/** A template whose messages are within a few percent of `target` bytes. */
export async function messageTemplate(target: number): Promise<MessageTemplate> {
  let textLen = Math.max(64, Math.round((target - 900) * 0.74));
  let full = "";
  for (let attempt = 0; attempt < 4; attempt++) {
    full = pgpMime("FROMADDR", "TOADDR", await armoredPayload(randomText(textLen)));
    const ratio = target / full.length;
    if (Math.abs(1 - ratio) < 0.03) break;
    textLen = Math.max(64, Math.round(textLen * ratio + (target - full.length) * 0.1));
  }
  full = full.replace(/^Message-ID: <[^>]*>/m, "Message-ID: <MSGID>");
  const split = full.indexOf("\r\n\r\n");
  const head = full.slice(0, split);
  const rest = full.slice(split);
  if (/\r\n\./.test(rest)) throw new Error("benchmark body would need dot-stuffing");
  if (!rest.endsWith("\r\n")) throw new Error("benchmark body must end with CRLF");
  return {
    size: full.length,
    head,
    smtpBody: enc.encode(rest + ".\r\n"),
    rawBody: enc.encode(rest),
  };
}

let counter = 0;

/** The header bytes of one message. */
export function headFor(t: MessageTemplate, from: string, to: string): Uint8Array {
  const id = `${Date.now().toString(36)}.${(++counter).toString(36)}.${
    Math.random().toString(36).slice(2, 10)
  }@bench.localhost`;
  return enc.encode(
    t.head.replace("FROMADDR", from).replace("TOADDR", to).replace("MSGID", id),
  );
}

/** A whole message for IMAP APPEND. */
export function appendMessage(t: MessageTemplate, from: string, to: string): Uint8Array {
  const head = headFor(t, from, to);
  const out = new Uint8Array(head.length + t.rawBody.length);
  out.set(head);
  out.set(t.rawBody, head.length);
  return out;
}
