// POST /mxdeliv: inbound delivery from other chatmail relays over HTTPS. The envelope comes in
// X-Mail-From / X-Mail-To headers, the raw message is the body (filtermail http_server).

import { Hono } from "hono";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { MxdelivHandler } from "./backend.ts";
import { jsonError, methodNotAllowed } from "./errors.ts";

export const REPLY_TOO_LARGE = "552 Message exceeds maximum size";

function stripBrackets(a: string): string {
  const t = a.trim();
  return t.startsWith("<") && t.endsWith(">") ? t.slice(1, -1).trim() : t;
}

/** All X-Mail-To values (repeated headers arrive joined by ", "). */
export function parseRecipients(header: string | null): string[] {
  if (!header) return [];
  return header.split(",").map(stripBrackets).filter(Boolean);
}

/** Reads at most `max` bytes; null when the body is larger. */
export async function readBodyLimited(req: Request, max: number): Promise<Uint8Array | null> {
  const declared = Number(req.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > max) {
    await req.body?.cancel();
    return null;
  }
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function mxdelivRoutes(
  options: { handler?: MxdelivHandler; maxMessageBytes: number },
): Hono {
  const app = new Hono();
  app.post("/mxdeliv", async (c: Context) => {
    if (!options.handler) return jsonError(c, 503, "federation delivery is not available");
    const recipients = parseRecipients(c.req.header("x-mail-to") ?? null);
    const mailFrom = stripBrackets(c.req.header("x-mail-from") ?? "");
    const body = await readBodyLimited(c.req.raw, options.maxMessageBytes);
    if (body === null) return c.text(REPLY_TOO_LARGE, 413);
    if (recipients.length === 0) return c.text("501 5.5.4 Missing X-Mail-To header", 400);
    const r = await options.handler({ mailFrom, recipients }, body);
    return c.text(r.text, r.status as ContentfulStatusCode);
  });
  app.all("/mxdeliv", (c) => methodNotAllowed(c, "POST"));
  return app;
}
