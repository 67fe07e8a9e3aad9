// The plain HTTP routes of an iroh relay: GET /ping (clients measure latency to their relays) and
// GET /generate_204 (captive-portal check, answering the X-Tailscale-Challenge), as iroh-relay
// 0.35 serves them; and an answer for /relay requests that were no usable upgrade.

import { Hono } from "hono";
import { LEGACY_RELAY_PATH, RELAY_PATH } from "./iroh_relay.ts";

const CHALLENGE = /^[A-Za-z0-9._-]{1,63}$/;

/** `serving` is read per request: while it is false these paths are not found. */
export function irohProbeRoutes(serving: () => boolean): Hono {
  const app = new Hono();
  app.get("/ping", (c) => {
    if (!serving()) return c.notFound();
    c.header("access-control-allow-origin", "*");
    return c.body(null, 200);
  });
  app.get("/generate_204", (c) => {
    if (!serving()) return c.notFound();
    const challenge = c.req.header("x-tailscale-challenge");
    if (challenge && CHALLENGE.test(challenge)) {
      c.header("x-tailscale-response", `response ${challenge}`);
    }
    return c.body(null, 204);
  });
  // The HTTP listener hands proper upgrades over at the first request; what arrives here (a
  // later request on a kept-alive connection, a malformed upgrade) cannot be served.
  for (const path of [RELAY_PATH, LEGACY_RELAY_PATH]) {
    app.get(path, (c) => {
      if (!serving()) return c.notFound();
      if (c.req.header("upgrade")?.toLowerCase() === "websocket") {
        c.header("sec-websocket-version", "13");
      }
      return c.text("Relay connections need an HTTP upgrade as the first request\n", 400);
    });
  }
  return app;
}
