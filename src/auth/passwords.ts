// Password hashes: scrypt (RFC 7914) in a self-describing string, scrypt$N$r$p$salt$key (base64),
// so every stored hash carries its own parameters and they can change between releases.
//
// What the hash protects, and why this cost: Delta Chat takes its password from /new (12 random
// characters from 62, about 71 bits) and never shows it to the user; a JIT login may bring any
// password of at least password_min_length characters. The hash only matters once the database
// has leaked (a stolen backup): then it sets the price of each offline guess. The reference relay
// stores SHA512-CRYPT (5000 rounds of SHA-512, about 2-4 ms of CPU, and cheap per guess on a GPU).
// scrypt with N=2^10, r=8, p=1 costs about 3 ms of CPU here as well, but needs 1 MiB of memory per
// guess, which makes each GPU guess far dearer than a SHA512-CRYPT one; against 71 random bits no
// feasible attacker gets anywhere either way, and no cost rescues a password from a dictionary.
// The relay itself pays the cost at every sign-up and at the first login after each start (the
// verified-password cache in AccountService is in memory): the earlier N=2^14 (about 50 ms each)
// made a burst of 1000 sign-ups queue for tens of seconds, and so would a restart with 10 000
// devices reconnecting. Hashes with other parameters still verify and are replaced by one with
// the current parameters at the next successful login (needsRehash).
//
// Runs off the event loop, on every core: a pool of one worker per core (password_pool.ts). At
// most one run per core at a time keeps memory bounded under a burst (the work is CPU-bound, so
// more at once would not finish sooner); the rest wait in order. Where workers cannot start, runs
// fall back to node:crypto's asynchronous scrypt, which does only part of its work off the loop.

import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { ScryptPool } from "./password_pool.ts";

/** Parameters of new hashes. */
export const SCRYPT_PARAMS = { n: 1 << 10, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Stored hashes asking for more than this are refused rather than computed (at most 128 MiB). */
const MAX_N = 1 << 17;

export interface PasswordHasher {
  /** A new hash of `password` with the current parameters and a fresh salt. */
  hash(password: string): Promise<string>;
  /** True when `stored` is a hash of `password`; false for a wrong password or a malformed hash. */
  verify(password: string, stored: string): Promise<boolean>;
  /** True when `stored` was made with other parameters than hash() uses now. */
  needsRehash(stored: string): boolean;
  /**
   * A well-formed hash with the current parameters that no password matches: verifying against
   * it costs what a real verification costs (used where an account is missing).
   */
  dummyHash(): string;
}

const MAX_CONCURRENT = Math.max(1, Math.min(16, navigator.hardwareConcurrency || 1));
const pool = new ScryptPool(MAX_CONCURRENT);
const counts = { hashes: 0, verifications: 0 };
// The in-thread fallback's own admission (used only when workers cannot run).
let running = 0;
const waiting: (() => void)[] = [];

async function scryptAsync(
  password: string,
  salt: Uint8Array,
  params: { n: number; r: number; p: number },
): Promise<Uint8Array> {
  if (!pool.broken) {
    try {
      return await pool.run({ password, salt, ...params, keyLen: KEY_BYTES });
    } catch (err) {
      if (!pool.broken) throw err;
    }
  }
  // A finishing run hands its slot straight to the next waiter, so `running` never overshoots.
  if (running < MAX_CONCURRENT) running++;
  else await new Promise<void>((go) => waiting.push(go));
  try {
    return await new Promise<Uint8Array>((resolve, reject) =>
      scrypt(
        password,
        salt,
        KEY_BYTES,
        { N: params.n, r: params.r, p: params.p, maxmem: 256 * params.n * params.r + (1 << 20) },
        (err, key) => err ? reject(err) : resolve(new Uint8Array(key)),
      )
    );
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

interface Parsed {
  n: number;
  r: number;
  p: number;
  salt: Uint8Array;
  key: Uint8Array;
}

function parse(stored: string): Parsed | null {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return null;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0)) return null;
  // N must be a power of two; r·p bounded as RFC 7914 requires (and to bound memory and time).
  if (n < 2 || n > MAX_N || (n & (n - 1)) !== 0 || r > 32 || p > 16) return null;
  try {
    const salt = unb64(parts[4]);
    const key = unb64(parts[5]);
    if (salt.length < 8 || key.length < 16) return null;
    return { n, r, p, salt, key };
  } catch {
    return null; // not base64: a damaged hash, treated as not matching
  }
}

export async function hashPassword(password: string): Promise<string> {
  const { n, r, p } = SCRYPT_PARAMS;
  const salt = new Uint8Array(randomBytes(SALT_BYTES));
  counts.hashes++;
  const key = await scryptAsync(password, salt, SCRYPT_PARAMS);
  return `scrypt$${n}$${r}$${p}$${b64(salt)}$${b64(key)}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const h = parse(stored);
  counts.verifications++;
  // A malformed hash still costs one run, so a damaged row answers as slowly as a wrong password.
  const key = await scryptAsync(password, h?.salt ?? DUMMY_SALT, h ?? SCRYPT_PARAMS);
  return h !== null && key.length === h.key.length && timingSafeEqual(key, h.key);
}

const DUMMY_SALT = new Uint8Array(randomBytes(SALT_BYTES));

export function dummyHash(): string {
  const { n, r, p } = SCRYPT_PARAMS;
  return `scrypt$${n}$${r}$${p}$${b64(randomBytes(SALT_BYTES))}$${b64(randomBytes(KEY_BYTES))}`;
}

export function needsRehash(stored: string): boolean {
  const h = parse(stored);
  return !h || h.n !== SCRYPT_PARAMS.n || h.r !== SCRYPT_PARAMS.r || h.p !== SCRYPT_PARAMS.p;
}

/** The scrypt hasher with the current parameters. */
export const scryptHasher: PasswordHasher = {
  hash: hashPassword,
  verify: verifyPassword,
  needsRehash,
  dummyHash,
};

/**
 * Runs in progress and waiting for a slot, workers alive and started, how many hashes and
 * verifications were started since the process began, and why workers are not used (if so).
 */
export function passwordWork(): {
  running: number;
  waiting: number;
  limit: number;
  workers: number;
  workersStarted: number;
  /** Runs answered by a worker. */
  inWorkers: number;
  hashes: number;
  verifications: number;
  inThread: string | null;
  /** Why a worker could not lower its thread's priority (password_pool.ts), if one could not. */
  priorityFailure: string | null;
} {
  const s = pool.stats();
  return {
    running: s.running + running,
    waiting: s.waiting + waiting.length,
    limit: MAX_CONCURRENT,
    workers: s.workers,
    workersStarted: s.started,
    inWorkers: s.done,
    ...counts,
    inThread: pool.broken,
    priorityFailure: pool.priority.failure,
  };
}
