// Bearer-token check for the admin API: constant-time comparison of SHA-256 digests; repeated
// failures from one client address are slowed down, then refused with 429 for a while.

import type { MiddlewareHandler } from "hono";
import { createHash, timingSafeEqual } from "node:crypto";
import { clientAddress, jsonError } from "../http/mod.ts";

export interface RequireAdminOptions {
  token: () => string;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Failures answered without delay. */
  freeFailures?: number;
  /** Failures after which the address gets 429 until the window ends. */
  maxFailures?: number;
  windowMs?: number;
  maxDelayMs?: number;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** True when `given` equals `expected`; time does not depend on where they differ. */
export function tokensMatch(given: string, expected: string): boolean {
  if (expected === "") return false;
  return timingSafeEqual(digest(given), digest(expected));
}

export function requireAdmin(options: RequireAdminOptions): MiddlewareHandler {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const free = options.freeFailures ?? 3;
  const max = options.maxFailures ?? 10;
  const windowMs = options.windowMs ?? 60_000;
  const maxDelayMs = options.maxDelayMs ?? 2000;
  const failures = new Map<string, { count: number; since: number }>();

  const current = (ip: string, t: number) => {
    const f = failures.get(ip);
    if (f && t - f.since > windowMs) {
      failures.delete(ip);
      return undefined;
    }
    return f;
  };

  return async (c, next) => {
    const ip = clientAddress(c);
    const t = now();
    const f = current(ip, t);
    if (f && f.count >= max) {
      c.header("retry-after", String(Math.max(1, Math.ceil((f.since + windowMs - t) / 1000))));
      return jsonError(c, 429, "too many failed logins; try again later");
    }
    const expected = options.token();
    if (expected === "") return jsonError(c, 403, "admin API is disabled");
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (m && tokensMatch(m[1], expected)) {
      failures.delete(ip);
      return await next();
    }
    const entry = f ?? { count: 0, since: t };
    entry.count++;
    failures.set(ip, entry);
    if (failures.size > 10_000) {
      for (const [k, v] of failures) if (t - v.since > windowMs) failures.delete(k);
      // Still full (many addresses inside one window): forget the oldest half, so neither
      // memory nor the cost of this sweep grows with an attacker's address range.
      if (failures.size > 10_000) {
        let drop = failures.size / 2;
        for (const k of failures.keys()) {
          if (drop-- <= 0) break;
          failures.delete(k);
        }
      }
    }
    const over = entry.count - free;
    if (over > 0) await sleep(Math.min(maxDelayMs, 250 * 2 ** Math.min(over - 1, 10)));
    c.header("www-authenticate", 'Bearer realm="tern admin"');
    return jsonError(c, 401, m ? "invalid admin token" : "missing admin token");
  };
}
