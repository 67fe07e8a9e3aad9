// The peer address of a request, from Deno.serve's handler info (Hono passes it as c.env).
// Forwarded headers are ignored: tern serves HTTP itself, so they would only let clients lie.

import type { Context } from "hono";

export function clientAddress(c: Context): string {
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return env?.remoteAddr?.hostname ?? "unknown";
}
