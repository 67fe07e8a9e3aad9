// Test messages in the shapes the encryption policy must judge: PGP/MIME as Delta Chat writes it
// (generated with openpgp), Secure-Join requests, bounces, cleartext, and forgeries.

import * as openpgp from "openpgp";
import { deltaChatCorpus } from "./deltachat_corpus.ts";

let keyPromise: Promise<openpgp.PrivateKey> | null = null;

function testKey(): Promise<openpgp.PrivateKey> {
  keyPromise ??= openpgp.generateKey({
    type: "ecc",
    curve: "curve25519Legacy",
    userIDs: [{ email: "test@example.org" }],
    format: "object",
  }).then((k) => k.privateKey);
  return keyPromise;
}

export async function armoredPayload(text: string): Promise<string> {
  const key = await testKey();
  const armored = await openpgp.encrypt({
    message: await openpgp.createMessage({ text }),
    encryptionKeys: key.toPublic(),
  });
  return (armored as string).replace(/\r?\n/g, "\r\n");
}

function headerBlock(from: string, to: string, extra: string[] = []): string {
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    "Subject: [...]",
    "Date: Mon, 23 Nov 2026 07:00:00 +0000",
    `Message-ID: <${crypto.randomUUID()}@localhost>`,
    "Chat-Version: 1.0",
    "MIME-Version: 1.0",
    ...extra,
  ].join("\r\n");
}

export function pgpMime(from: string, to: string, armored: string, extra: string[] = []): string {
  const b = "18ea8807fd3c06d8_e7262a8cf62d930d";
  return headerBlock(from, to, [
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n\tboundary="${b}"`,
    ...extra,
  ]) +
    "\r\n\r\n\r\n" +
    `--${b}\r\nContent-Type: application/pgp-encrypted; charset="utf-8"\r\n` +
    "Content-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n\r\n" +
    `--${b}\r\nContent-Type: application/octet-stream; charset="utf-8"\r\n` +
    "Content-Transfer-Encoding: 7bit\r\n\r\n" +
    armored + (armored.endsWith("\r\n") ? "" : "\r\n") +
    `\r\n--${b}--\r\n`;
}

/** A genuine Delta Chat style encrypted message (PKESK + SEIPD). */
export async function encryptedMessage(from: string, to: string, text = "hello"): Promise<string> {
  return pgpMime(from, to, await armoredPayload(text));
}

export function secureJoinRequest(
  from: string,
  to: string,
  body = "Secure-Join: vc-request",
): string {
  const b = "sj-boundary";
  return headerBlock(from, to, [
    "Secure-Join: vc-request",
    "Secure-Join-Invitenumber: abcdefghijkl",
    `Content-Type: multipart/mixed; boundary="${b}"`,
  ]) +
    `\r\n\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n--${b}--\r\n`;
}

export function plainMessage(
  from: string,
  to: string,
  body = "Hi, this is not encrypted.",
): string {
  return headerBlock(from, to, ["Content-Type: text/plain; charset=utf-8"]) + `\r\n\r\n${body}\r\n`;
}

export function htmlMessage(from: string, to: string): string {
  return headerBlock(from, to, ["Content-Type: text/html; charset=utf-8"]) +
    "\r\n\r\n<p>Hello</p>\r\n";
}

/** A text/plain body wrapped in PGP armor: looks encrypted to string matching, is not. */
export function fakeArmorMessage(from: string, to: string): string {
  return headerBlock(from, to, ["Content-Type: text/plain"]) +
    "\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nHi!\r\n-----END PGP MESSAGE-----\r\n";
}

export function bounceMessage(fromDomain: string, to: string): string {
  const b = "bounce-b";
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${fromDomain}>`,
    `To: <${to}>`,
    "Subject: Undelivered Mail Returned to Sender",
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
    "",
    `--${b}`,
    "Content-Type: text/plain",
    "",
    "Your message could not be delivered.",
    `--${b}`,
    "Content-Type: message/delivery-status",
    "",
    "Reporting-MTA: dns; example.net",
    "",
    `--${b}--`,
    "",
  ].join("\r\n");
}

/** Builds an armored payload from raw packets (for wrong/extra packet sequences). */
export function armorPackets(packets: Uint8Array): string {
  let bin = "";
  for (const b of packets) bin += String.fromCharCode(b);
  const b64 = btoa(bin).replace(/.{1,64}/g, (l) => l + "\r\n");
  return `-----BEGIN PGP MESSAGE-----\r\n\r\n${b64}-----END PGP MESSAGE-----\r\n`;
}

/** A new-format packet with the given tag and body length filled with zeros. */
export function packet(tag: number, length: number): Uint8Array {
  if (length >= 192) throw new Error("test packets are short");
  const p = new Uint8Array(2 + length);
  p[0] = 0xc0 | tag;
  p[1] = length;
  return p;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The captured Delta Chat 2.57 messages (tests/fixtures/deltachat/) as text, CRLF as sent. */
export function realDeltaChatMessages(): { name: string; from: string; text: string }[] {
  return deltaChatCorpus().map((m) => ({
    name: m.file,
    from: m.from,
    text: new TextDecoder().decode(m.bytes),
  }));
}
