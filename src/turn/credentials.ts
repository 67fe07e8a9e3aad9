// TURN credentials in the "TURN REST API" scheme that Delta Chat and chatmail use: the username is
// the expiry time as a decimal unix timestamp, the password is base64(HMAC-SHA1(secret, username)).
// The server checks them as long-term credentials (RFC 5389 section 10.2), whose key is
// MD5(username ":" realm ":" password).

import { createHash, createHmac } from "node:crypto";

export const DEFAULT_CREDENTIAL_TTL_SEC = 5 * 86400;

export interface TurnCredentials {
  username: string;
  password: string;
}

/** The password that belongs to a username under the shared secret. */
export function turnPassword(secret: string, username: string): string {
  return createHmac("sha1", secret).update(username).digest("base64");
}

/** Fresh credentials valid for ttlSec from nowMs. */
export function turnCredentials(
  secret: string,
  nowMs: number,
  ttlSec: number = DEFAULT_CREDENTIAL_TTL_SEC,
): TurnCredentials {
  const username = String(Math.floor(nowMs / 1000) + ttlSec);
  return { username, password: turnPassword(secret, username) };
}

/** The METADATA value /shared/vendor/deltachat/turn: "host:port:username:password". */
export function turnMetadataValue(
  host: string,
  port: number,
  secret: string,
  nowMs: number,
  ttlSec: number = DEFAULT_CREDENTIAL_TTL_SEC,
): string {
  const { username, password } = turnCredentials(secret, nowMs, ttlSec);
  return `${host}:${port}:${username}:${password}`;
}

/** The expiry (unix seconds) a username carries: "1700000000" or "1700000000:anything"; null
 *  when it is not of that form. */
export function usernameExpiry(username: string): number | null {
  const m = /^(\d{1,12})(?::.*)?$/s.exec(username);
  return m ? Number(m[1]) : null;
}

/** RFC 5389 long-term credential key: MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash("md5").update(`${username}:${realm}:${password}`).digest());
}

/** The MESSAGE-INTEGRITY key for a username, or null when the username is malformed or its
 *  timestamp has passed (or the secret is empty). */
export function turnKeyFor(
  secret: string,
  username: string,
  realm: string,
  nowMs: number,
): Uint8Array | null {
  if (!secret) return null;
  const expiry = usernameExpiry(username);
  if (expiry === null || expiry * 1000 < nowMs) return null;
  return longTermKey(username, realm, turnPassword(secret, username));
}
