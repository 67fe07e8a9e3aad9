// Password hashing with scrypt (node:crypto), in a self-describing string:
// scrypt$N$r$p$salt$hash (base64). Verification compares in constant time.

import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

const N = 16384;
const R = 8;
const P = 1;
const KEY_BYTES = 32;

// Each scrypt run holds 128·N·r bytes (16 MiB here) on its own worker thread, and the allocator
// keeps what those threads touched: 625 concurrent first logins left the process at 660 MB RSS.
// Running at most one per core bounds that to a few runs' worth without slowing the total (the
// work is CPU-bound); the other logins wait their turn.
const MAX_CONCURRENT = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
let running = 0;
const waiting: (() => void)[] = [];

async function scryptAsync(
  password: string,
  salt: Uint8Array,
  n: number,
  r: number,
  p: number,
): Promise<Uint8Array> {
  // A finishing run hands its slot straight to the next waiter, so `running` never overshoots.
  if (running < MAX_CONCURRENT) running++;
  else await new Promise<void>((go) => waiting.push(go));
  try {
    return await scryptRun(password, salt, n, r, p);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function scryptRun(password: string, salt: Uint8Array, n: number, r: number, p: number) {
  return new Promise<Uint8Array>((resolve, reject) =>
    scrypt(
      password,
      salt,
      KEY_BYTES,
      { N: n, r, p, maxmem: 256 * n * r * 2 },
      (err, key) => err ? reject(err) : resolve(new Uint8Array(key)),
    )
  );
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

export async function hashPassword(password: string): Promise<string> {
  const salt = new Uint8Array(randomBytes(16));
  const key = await scryptAsync(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${b64(salt)}$${b64(key)}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0) || n > 1 << 20) return false;
  const expected = unb64(parts[5]);
  const key = await scryptAsync(password, unb64(parts[4]), n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** How many scrypt runs are computing and how many wait for a slot (for tests and metrics). */
export function passwordWork(): { running: number; waiting: number; limit: number } {
  return { running, waiting: waiting.length, limit: MAX_CONCURRENT };
}
