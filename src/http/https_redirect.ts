// The plain-HTTP listener (port 80): it answers ACME HTTP-01 challenges (RFC 8555 §8.3) and sends
// everything else to HTTPS, as the reference relay's nginx does. Nothing else is ever served over
// plain HTTP: /new hands out passwords, /mxdeliv carries mail and the admin API a bearer token.
// GET and HEAD get 301; other methods 308, so a client repeating the request keeps its method
// (RFC 9110 §15.4.9). A request body is never read.

import { Hono } from "hono";
import type { Context } from "hono";
import type { HttpDeps } from "./backend.ts";

/** The names the relay answers for; a redirect keeps the requested one when it is among them. */
function knownHosts(config: HttpDeps["config"]): Set<string> {
  const bare = config.mailDomain.replace(/^\[|\]$/g, "").toLowerCase();
  const names = [config.hostname.toLowerCase(), bare];
  if (!config.isIpDomain) names.push(`mta-sts.${bare}`, `www.${bare}`);
  return new Set(names);
}

/** The host part of a Host header ("[::1]:80" -> "::1"), lowercased; "" when malformed. */
function hostOf(header: string | undefined): string {
  const m = /^(?:\[([0-9a-f:.]+)\]|([a-z0-9.-]+))(?::\d{1,5})?$/i.exec(header ?? "");
  return (m?.[1] ?? m?.[2] ?? "").toLowerCase();
}

export function httpsRedirectApp(
  deps: Pick<HttpDeps, "config" | "acmeChallenge">,
): Hono {
  const app = new Hono();
  const known = knownHosts(deps.config);

  app.get("/.well-known/acme-challenge/:token", (c) => {
    const answer = deps.acmeChallenge?.(c.req.param("token")) ?? null;
    return answer === null ? c.text("Not found", 404) : c.text(answer);
  });
  app.all("*", (c: Context) => {
    const asked = hostOf(c.req.header("host"));
    const host = known.has(asked) ? asked : deps.config.hostname.toLowerCase();
    const port = deps.config.ports.https;
    const authority = (host.includes(":") ? `[${host}]` : host) +
      (port && port !== 443 ? `:${port}` : "");
    const url = new URL(c.req.url);
    const status = c.req.method === "GET" || c.req.method === "HEAD" ? 301 : 308;
    const location = `https://${authority}${url.pathname}${url.search}`;
    return c.text(`HTTPS only: ${location}\n`, status, {
      location,
      "cache-control": "no-store",
    });
  });
  return app;
}
