// SASL PLAIN (RFC 4616) and LOGIN decoding for AUTH; the session drives the exchange.

export interface Credentials {
  user: string;
  password: string;
  /** PLAIN's authorization identity when not empty; whether it is allowed is the login's call. */
  authzid?: string;
}

/** Decodes base64 strictly; null when it is not valid base64. */
export function decodeBase64Text(b64: string): string | null {
  const t = b64.trim();
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return null;
  try {
    const bin = atob(t);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** "authzid\0authcid\0password"; null when malformed (not three parts, no user or password). */
export function parsePlain(b64: string): Credentials | null {
  const text = decodeBase64Text(b64);
  if (text === null) return null;
  const parts = text.split("\0");
  if (parts.length !== 3) return null;
  const [authzid, user, password] = parts;
  if (!user || !password) return null;
  return authzid ? { user, password, authzid } : { user, password };
}

export function encodeBase64Text(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
