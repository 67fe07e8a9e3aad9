// `/new` (and the legacy `/cgi-bin/newemail.py`): hands out fresh credentials; the account itself
// appears on first login (just-in-time). Trusted-certificate relays redirect GET to `dcaccount:`.

import { Hono } from "hono";
import type { Context } from "hono";
import type { HttpDeps } from "./backend.ts";
import { clientAddress } from "./client_address.ts";
import { dcloginUrl, newAccountUrl, usesDclogin } from "./dclogin.ts";
import { methodNotAllowed } from "./errors.ts";
import { TokenBuckets } from "./rate_limit.ts";
import { limitKey } from "../net/mod.ts";

export const NEW_ACCOUNT_PATHS = ["/new", "/cgi-bin/newemail.py"] as const;

/** JSON with Python's default separators and ASCII escapes, as the reference CGI prints it. */
export function pythonJson(obj: Record<string, string>): string {
  const ascii = (s: string) =>
    JSON.stringify(s).replace(
      /[\u007f-\uffff]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
    );
  return "{" + Object.entries(obj).map(([k, v]) => `${ascii(k)}: ${ascii(v)}`).join(", ") + "}";
}

function answer(
  status: 200 | 400 | 403 | 413 | 429,
  obj: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return new Response(pythonJson(obj), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

const MAX_TOKEN_LENGTH = 200;
/** A form or JSON body carrying a token is far smaller; a larger one is not read on. */
export const MAX_NEW_BODY_BYTES = 16 * 1024;

class BodyTooLarge extends Error {}

/** The request body, at most MAX_NEW_BODY_BYTES (whatever Content-Length claims or omits). */
async function readSmallBody(c: Context): Promise<Uint8Array<ArrayBuffer>> {
  if (Number(c.req.header("content-length") ?? 0) > MAX_NEW_BODY_BYTES) {
    await c.req.raw.body?.cancel();
    throw new BodyTooLarge();
  }
  const reader = c.req.raw.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const bytes = new Uint8Array(MAX_NEW_BODY_BYTES);
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes.subarray(0, size);
    if (size + value.length > MAX_NEW_BODY_BYTES) {
      await reader.cancel();
      throw new BodyTooLarge();
    }
    bytes.set(value, size);
    size += value.length;
  }
}

/** The registration token from ?token=, a JSON body or a form body; null when absent. */
async function readToken(c: Context): Promise<string | null | Error> {
  const q = c.req.query("token");
  if (q) return q;
  if (c.req.method !== "POST") return null;
  const type = c.req.header("content-type") ?? "";
  const json = type.includes("application/json");
  const form = type.includes("application/x-www-form-urlencoded") ||
    type.includes("multipart/form-data");
  if (!json && !form) return null;
  try {
    const bytes = await readSmallBody(c);
    if (json) {
      const text = new TextDecoder().decode(bytes);
      if (!text.trim()) return null;
      const body = JSON.parse(text) as unknown;
      const t = body && typeof body === "object"
        ? (body as Record<string, unknown>).token
        : undefined;
      return typeof t === "string" && t ? t : null;
    }
    const t = (await new Response(bytes, { headers: { "content-type": type } }).formData())
      .get("token");
    return typeof t === "string" && t ? t : null;
  } catch (err) {
    return err instanceof BodyTooLarge ? err : new Error("invalid request body");
  }
}

export function newAccountRoutes(deps: HttpDeps): Hono {
  const limit = deps.newAccountRateLimit ?? { perSecond: 2, burst: 5 };
  const buckets = new TokenBuckets({ ...limit, now: deps.now });
  const app = new Hono();

  const handle = async (c: Context) => {
    const { config } = deps;
    if (c.req.method === "GET" && !usesDclogin(config)) {
      // Browsers hand the link to Delta Chat, which POSTs to the URL (chatmail nginx).
      return c.redirect(`dcaccount:${newAccountUrl(config)}`, 301);
    }
    // Per IPv6 /64, as the connection limits: one host has all of it.
    const ip = limitKey(clientAddress(c));
    if (!buckets.take(ip)) {
      return answer(429, { error: "too many requests" }, {
        "retry-after": String(buckets.retryAfterSeconds(ip) || 1),
      });
    }
    const mode = deps.settings.get("registration");
    if (mode === "closed" || deps.settings.get("jit_enabled") !== "true") {
      return answer(403, { error: "registration is closed" });
    }
    let token: string | null = null;
    if (mode === "token") {
      const t = await readToken(c);
      if (t instanceof BodyTooLarge) return answer(413, { error: "request body too large" });
      if (t instanceof Error) return answer(400, { error: t.message });
      if (!t) return answer(403, { error: "registration token required" });
      if (t.length > MAX_TOKEN_LENGTH || !(await deps.consumeRegistrationToken(t))) {
        return answer(403, { error: "invalid registration token" });
      }
      token = t;
    }
    const { email, password } = deps.accounts.generateCredentials();
    if (token !== null) await deps.accounts.reserve(email);
    const body: Record<string, string> = { email, password };
    if (usesDclogin(config)) body.dclogin_url = dcloginUrl(config, email, password);
    return answer(200, body);
  };

  for (const path of NEW_ACCOUNT_PATHS) {
    app.get(path, handle);
    app.post(path, handle);
    app.all(path, (c) => methodNotAllowed(c, "GET, POST"));
  }
  return app;
}
