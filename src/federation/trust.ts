// The certificates outbound TLS trusts, the same for SMTP (STARTTLS) and HTTPS (/mxdeliv), which
// both connect through node:tls. Measured in Deno 2.9.6: node:tls without a `ca` option uses
// Deno's store, which honours DENO_CERT; a `ca` option replaces that store (DENO_CERT included);
// node:https ignores DENO_CERT altogether, which is why /mxdeliv no longer goes through it.

import * as tls from "node:tls";
import { readFileSync } from "node:fs";

/**
 * The `ca` option for node:tls: undefined (Deno's own store) when nothing is configured, else the
 * bundled roots, the DENO_CERT file and the configured CAs together.
 */
export function trustedCas(
  configured: readonly string[] = [],
  denoCertPath: string | undefined = Deno.env.get("DENO_CERT"),
): string[] | undefined {
  if (configured.length === 0) return undefined;
  const extra: string[] = [];
  if (denoCertPath) {
    try {
      extra.push(readFileSync(denoCertPath, "utf8"));
    } catch (err) {
      throw new Error(`Cannot read DENO_CERT ${denoCertPath}: ${(err as Error).message}`);
    }
  }
  return [...tls.rootCertificates, ...extra, ...configured];
}
