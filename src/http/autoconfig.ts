// Client discovery files: Mozilla autoconfig (clientConfig 1.1, as the chatmail relay publishes it)
// and the MTA-STS policy (RFC 8461 §3.2) for DNS-named relays.

import { Hono } from "hono";
import type { HttpConfig } from "./backend.ts";
import { mailHost, webHost } from "./dclogin.ts";
import { escapeHtml } from "./pages/layout.ts";

export const AUTOCONFIG_PATHS = [
  "/.well-known/autoconfig/mail/config-v1.1.xml",
  "/mail/config-v1.1.xml",
] as const;

function server(
  kind: "incomingServer" | "outgoingServer",
  type: string,
  host: string,
  port: number,
  socket: string,
) {
  return `    <${kind} type="${type}">
      <hostname>${escapeHtml(host)}</hostname>
      <port>${port}</port>
      <socketType>${socket}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </${kind}>
`;
}

export function autoconfigXml(
  config: Pick<HttpConfig, "mailDomain" | "hostname" | "isIpDomain" | "ports">,
): string {
  const domain = escapeHtml(config.mailDomain);
  const host = mailHost(config);
  const { ports } = config;
  let servers = "";
  if (ports.imaps > 0) servers += server("incomingServer", "imap", host, ports.imaps, "SSL");
  if (ports.imap > 0) servers += server("incomingServer", "imap", host, ports.imap, "STARTTLS");
  if (ports.submissions > 0) {
    servers += server("outgoingServer", "smtp", host, ports.submissions, "SSL");
  }
  if (ports.submission > 0) {
    servers += server("outgoingServer", "smtp", host, ports.submission, "STARTTLS");
  }
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${domain}">
    <domain>${domain}</domain>
    <displayName>${domain} chatmail</displayName>
    <displayShortName>${domain}</displayShortName>
${servers}  </emailProvider>
</clientConfig>
`;
}

/** Enforced MTA-STS policy naming our MX host(s); null for IP relays (no DNS, no policy). */
export function mtaStsPolicy(
  config: Pick<HttpConfig, "mailDomain" | "hostname" | "isIpDomain">,
): string | null {
  if (config.isIpDomain) return null;
  const mx = [...new Set([config.hostname, webHost(config)])];
  return `version: STSv1\nmode: enforce\n${mx.map((h) => `mx: ${h}\n`).join("")}max_age: 2419200\n`;
}

export function discoveryRoutes(config: HttpConfig): Hono {
  const app = new Hono();
  for (const path of AUTOCONFIG_PATHS) {
    app.get(path, (c) => {
      c.header("cache-control", "public, max-age=3600");
      return c.body(autoconfigXml(config), 200, {
        "content-type": "application/xml; charset=utf-8",
      });
    });
  }
  app.get("/.well-known/mta-sts.txt", (c) => {
    const policy = mtaStsPolicy(config);
    if (policy === null) return c.text("no MTA-STS policy for an IP relay\n", 404);
    return c.body(policy, 200, { "content-type": "text/plain; charset=utf-8" });
  });
  return app;
}
