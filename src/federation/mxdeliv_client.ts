// HTTPS delivery to another chatmail relay (POST /mxdeliv, chatmail-relay.md §5.5): envelope in
// X-Mail-From / X-Mail-To headers, the message as body. Any 2xx delivers every recipient.

import * as https from "node:https";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";

export interface MxdelivAttempt {
  /** Name for the certificate check, SNI and Host header. */
  host: string;
  /** Where to connect (the route's resolved address), so system DNS is never asked. */
  address: string;
  port: number;
  insecureTls: boolean;
  sender: string;
  recipients: string[];
  data: Uint8Array;
  timeoutMs?: number;
  caCerts?: string[];
}

export function postMxdeliv(a: MxdelivAttempt): Promise<{ status: number; text: string }> {
  const headers: Record<string, string | string[]> = {
    "content-type": "message/rfc822",
    "content-length": String(a.data.length),
    "x-mail-to": a.recipients,
  };
  if (a.sender) headers["x-mail-from"] = a.sender;
  return new Promise((resolve, reject) => {
    const hostHeader = a.host.includes(":") ? `[${a.host}]` : a.host;
    headers.host = a.port === 443 ? hostHeader : `${hostHeader}:${a.port}`;
    const req = https.request({
      hostname: a.address,
      servername: /^[\d.]+$|:/.test(a.host) ? undefined : a.host,
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(a.host, cert),
      port: a.port,
      method: "POST",
      path: "/mxdeliv",
      headers,
      rejectUnauthorized: !a.insecureTls,
      ca: a.caCerts,
      timeout: a.timeoutMs ?? 60_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on(
        "end",
        () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString("utf8").trim(),
          }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(Buffer.from(a.data));
  });
}
