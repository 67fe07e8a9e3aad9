// Account links for Delta Chat: `dclogin:` (credentials plus server settings, for self-signed and
// IP relays) and `dcaccount:` (the client POSTs to /new itself, for trusted certificates).

import type { HttpConfig } from "./backend.ts";

const UNRESERVED = /[A-Za-z0-9_.~-]/;

/** Percent-encodes like Python's urllib.parse.quote(s, safe) (UTF-8, upper-case hex). */
export function quote(s: string, safe = ""): string {
  let out = "";
  for (const ch of s) {
    if (UNRESERVED.test(ch) || safe.includes(ch)) {
      out += ch;
      continue;
    }
    for (const b of new TextEncoder().encode(ch)) {
      out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

/** The host name clients connect to: the bare IP for IP relays, else the server host name. */
export function mailHost(
  config: Pick<HttpConfig, "mailDomain" | "hostname" | "isIpDomain">,
): string {
  return config.isIpDomain ? config.mailDomain.replace(/^\[|\]$/g, "") : config.hostname;
}

/** The web host of the relay: the domain, or the bare IP. */
export function webHost(config: Pick<HttpConfig, "mailDomain">): string {
  return config.mailDomain.replace(/^\[|\]$/g, "");
}

/**
 * `dclogin:<addr>?p=<pw>&v=1&ih=<host>&ip=<port>&is=<sec>&sh=<host>&sp=<port>&ss=<sec>&ic=3`:
 * TLS ports are preferred; ic=3 makes the client accept our self-signed certificate.
 */
export function dcloginUrl(
  config: Pick<HttpConfig, "mailDomain" | "hostname" | "isIpDomain" | "selfSigned" | "ports">,
  email: string,
  password: string,
): string {
  const host = quote(mailHost(config), "[]:");
  const { ports } = config;
  const imap = ports.imaps > 0
    ? { port: ports.imaps, sec: "ssl" }
    : { port: ports.imap, sec: "starttls" };
  const smtp = ports.submissions > 0
    ? { port: ports.submissions, sec: "ssl" }
    : { port: ports.submission, sec: "starttls" };
  const params = [
    `p=${quote(password)}`,
    "v=1",
    `ih=${host}`,
    `ip=${imap.port}`,
    `is=${imap.sec}`,
    `sh=${host}`,
    `sp=${smtp.port}`,
    `ss=${smtp.sec}`,
  ];
  if (config.selfSigned || config.isIpDomain) params.push("ic=3");
  return `dclogin:${quote(email, "@[]")}?${params.join("&")}`;
}

/** `https://<domain>[:port]/new`, the URL Delta Chat POSTs to for a `dcaccount:` link. */
export function newAccountUrl(config: Pick<HttpConfig, "mailDomain" | "ports">): string {
  const port = config.ports.https && config.ports.https !== 443 ? `:${config.ports.https}` : "";
  return `https://${webHost(config)}${port}/new`;
}

/** Relays whose certificate clients will not verify hand out dclogin: links, not dcaccount:. */
export function usesDclogin(config: Pick<HttpConfig, "selfSigned" | "isIpDomain">): boolean {
  return config.selfSigned || config.isIpDomain;
}
