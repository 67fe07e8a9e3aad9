// Bearer-token check for the admin API: constant-time comparison of SHA-256 digests. Attempts go
// through the relay's login throttle, keyed by the client address and by the admin token as one
// account: past a few failures attempts are spaced out, and refused with 429 when the wait would
// be too long. An address that presented the right token before keeps working meanwhile.

import type { MiddlewareHandler } from "hono";
import { createHash, timingSafeEqual } from "node:crypto";
import { clientAddress, jsonError } from "../http/mod.ts";
import type { AdminLoginThrottle } from "./backend.ts";

export interface RequireAdminOptions {
  token: () => string;
  throttle: AdminLoginThrottle;
  sleep?: (ms: number) => Promise<void>;
}

/** The throttle's account key for the admin token (no address can take this form). */
export const ADMIN_THROTTLE_KEY = "<admin token>";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** True when `given` equals `expected`; time does not depend on where they differ. */
export function tokensMatch(given: string, expected: string): boolean {
  if (expected === "") return false;
  return timingSafeEqual(digest(given), digest(expected));
}

export function requireAdmin(options: RequireAdminOptions): MiddlewareHandler {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const { throttle } = options;

  return async (c, next) => {
    const expected = options.token();
    if (expected === "") return jsonError(c, 403, "admin API is disabled");
    const ip = clientAddress(c);
    const gate = await throttle.admit(ip, ADMIN_THROTTLE_KEY);
    if ("refused" in gate) {
      c.header("retry-after", String(Math.max(1, Math.ceil(gate.retryAfterMs / 1000))));
      return jsonError(c, 429, "too many failed logins; try again later");
    }
    if (gate.wait > 0) await sleep(gate.wait);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (m && tokensMatch(m[1], expected)) {
      await throttle.recordSuccess(ip, ADMIN_THROTTLE_KEY);
      return await next();
    }
    await throttle.recordFailure(ip, ADMIN_THROTTLE_KEY);
    c.header("www-authenticate", 'Bearer realm="tern admin"');
    return jsonError(c, 401, m ? "invalid admin token" : "missing admin token");
  };
}
