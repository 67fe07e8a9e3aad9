// POST /mxdeliv: inbound delivery from other chatmail relays over HTTPS. The envelope comes in
// X-Mail-From / X-Mail-To headers, the message is the body, dot-stuffed as in SMTP DATA without
// the final "." (filtermail's http_server and transport). The body streams into the delivery as
// it is read and unstuffed, never whole in memory, cut off at the size cap.

import { Hono } from "hono";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { MxdelivDelivery, MxdelivHandler } from "./backend.ts";
import { jsonError, methodNotAllowed } from "./errors.ts";
import { DotUnstuffer } from "./dot_unstuffer.ts";

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

/**
 * Streams the request body into the delivery, unstuffed, at most `max` bytes as sent. Over the
 * cap, or when the peer goes away mid-body (a normal end, not a failure), the delivery is aborted.
 */
export async function streamBody(
  req: Request,
  max: number,
  delivery: MxdelivDelivery,
): Promise<"complete" | "too_large" | "gone"> {
  if (!req.body) return "complete";
  let size = 0;
  const reader = req.body.getReader();
  const unstuffer = new DotUnstuffer();
  for (;;) {
    let piece: ReadableStreamReadResult<Uint8Array>;
    try {
      piece = await reader.read();
    } catch {
      await delivery.abort();
      return "gone";
    }
    if (piece.done) {
      const rest = unstuffer.end();
      if (rest.length) await delivery.write(rest);
      return "complete";
    }
    size += piece.value.length;
    if (size > max) {
      await delivery.abort();
      await reader.cancel();
      return "too_large";
    }
    const unstuffed = unstuffer.push(piece.value);
    if (unstuffed.length) await delivery.write(unstuffed);
  }
}

export function mxdelivRoutes(
  options: { handler?: MxdelivHandler; maxMessageBytes: number; maxRecipients: number },
): Hono {
  const app = new Hono();
  app.post("/mxdeliv", async (c: Context) => {
    if (!options.handler) return jsonError(c, 503, "federation delivery is not available");
    const recipients = parseRecipients(c.req.header("x-mail-to") ?? null);
    const mailFrom = stripBrackets(c.req.header("x-mail-from") ?? "");
    const declared = Number(c.req.header("content-length"));
    if (Number.isFinite(declared) && declared > options.maxMessageBytes) {
      await c.req.raw.body?.cancel();
      return c.text(REPLY_TOO_LARGE, 413);
    }
    if (recipients.length === 0) {
      await c.req.raw.body?.cancel();
      return c.text("501 5.5.4 Missing X-Mail-To header", 400);
    }
    // As SMTP answers the RCPT past max_recipients (and the reference's reinjection does).
    if (recipients.length > options.maxRecipients) {
      await c.req.raw.body?.cancel();
      return c.text("452 4.5.3 Too many recipients", 400);
    }
    const started = await options.handler({ mailFrom, recipients });
    if (!("write" in started)) {
      await c.req.raw.body?.cancel();
      return c.text(started.text, started.status as ContentfulStatusCode);
    }
    const read = await streamBody(c.req.raw, options.maxMessageBytes, started);
    if (read === "too_large") return c.text(REPLY_TOO_LARGE, 413);
    if (read === "gone") return c.text("421 4.4.2 The request body was cut off", 400);
    const r = await started.end();
    return c.text(r.text, r.status as ContentfulStatusCode);
  });
  app.all("/mxdeliv", (c) => methodNotAllowed(c, "POST"));
  return app;
}
