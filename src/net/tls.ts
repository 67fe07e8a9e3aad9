// TLS material: configured PEM files, or a local CA plus a leaf certificate generated on first
// start (Deno's TLS client rejects a self-signed certificate that is also a CA).

import tls from "node:tls";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateSelfSigned } from "./self_signed.ts";
import { type Tls13Credentials, tls13Credentials } from "./tls13/mod.ts";

export { generateSelfSigned };

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  /** The generated CA (self-signed mode only); clients may trust it. */
  caPem?: string;
  selfSigned: boolean;
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  names: string[];
  validFrom: Date;
  validTo: Date;
  selfSigned: boolean;
}

/**
 * Loads configured PEM files, or the self-signed material kept in `dir` (created on first use).
 */
export async function loadTlsMaterial(options: {
  certFile?: string;
  keyFile?: string;
  dir: string;
  names: string[];
}): Promise<TlsMaterial> {
  if (options.certFile || options.keyFile) {
    if (!options.certFile || !options.keyFile) {
      throw new Error("Cannot load TLS certificate: both tls_cert and tls_key must be set");
    }
    const certPem = readPem("tls_cert", options.certFile);
    const keyPem = readPem("tls_key", options.keyFile);
    checkPair(certPem, keyPem, options.certFile, options.keyFile);
    return { certPem, keyPem, selfSigned: false };
  }
  const certPath = join(options.dir, "selfsigned-cert.pem");
  const keyPath = join(options.dir, "selfsigned-key.pem");
  const caPath = join(options.dir, "selfsigned-ca.pem");
  if (existsSync(certPath) && existsSync(keyPath)) {
    const certPem = readFileSync(certPath, "utf8");
    const info = describeCertificate(certPem);
    const missing = options.names.map((n) => n.replace(/^\[|\]$/g, "")).filter((n) =>
      !info.names.includes(n)
    );
    if (missing.length === 0 && info.validTo.getTime() > Date.now() + 30 * 86400_000) {
      return {
        certPem,
        keyPem: readFileSync(keyPath, "utf8"),
        caPem: existsSync(caPath) ? readFileSync(caPath, "utf8") : undefined,
        selfSigned: true,
      };
    }
  }
  const m = await generateSelfSigned(options.names);
  mkdirSync(options.dir, { recursive: true });
  writeFileSync(keyPath, m.keyPem, { mode: 0o600 });
  writeFileSync(certPath, m.certPem);
  writeFileSync(caPath, m.caPem!);
  return m;
}

function readPem(key: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`Cannot load TLS certificate: ${key} ${file}: ${(err as Error).message}`);
  }
}

/**
 * A configured certificate and key must parse and belong together: otherwise the listeners would
 * start and fail every handshake (at start) or replace working certificates (at SIGHUP).
 */
function checkPair(certPem: string, keyPem: string, certFile: string, keyFile: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error(`Cannot load TLS certificate: tls_cert ${certFile} is not a PEM certificate`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new Error(`Cannot load TLS certificate: tls_key ${keyFile} is not a PEM private key`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error(
      `Cannot load TLS certificate: tls_key ${keyFile} does not match tls_cert ${certFile}`,
    );
  }
}

/** TLS versions a listener may require at least (TLS 1.0 and 1.1 are never offered). */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/** A certificate as PEM (HTTPS), as node:tls contexts (one per minimum TLS version), and as
 * tern's own TLS 1.3 engine's credentials. */
export interface ServerTls {
  certPem: string;
  keyPem: string;
  context(minVersion: TlsVersion): tls.SecureContext;
  /** Built once, at first use; null when the engine cannot sign with this key (node:tls then). */
  tls13(): Tls13Credentials | null;
}

export function createSecureContext(
  m: TlsMaterial,
  minVersion: TlsVersion = "TLSv1.2",
): tls.SecureContext {
  return tls.createSecureContext({ cert: m.certPem, key: m.keyPem, minVersion });
}

export function serverTls(m: TlsMaterial): ServerTls {
  const contexts = new Map<TlsVersion, tls.SecureContext>();
  let creds: Tls13Credentials | null | undefined;
  return {
    certPem: m.certPem,
    keyPem: m.keyPem,
    context(minVersion) {
      let c = contexts.get(minVersion);
      if (!c) contexts.set(minVersion, c = createSecureContext(m, minVersion));
      return c;
    },
    tls13() {
      if (creds === undefined) {
        try {
          creds = tls13Credentials(m.certPem, m.keyPem);
        } catch {
          // A key type the engine does not sign with: every client goes to node:tls.
          creds = null;
        }
      }
      return creds;
    },
  };
}

export function describeCertificate(certPem: string): CertificateInfo {
  const c = new X509Certificate(certPem);
  const names = (c.subjectAltName ?? "").split(/,\s*/).map((s) =>
    s.replace(/^(DNS|IP Address):/, "")
  )
    .filter(Boolean);
  return {
    subject: c.subject,
    issuer: c.issuer,
    names,
    validFrom: new Date(c.validFrom),
    validTo: new Date(c.validTo),
    selfSigned: c.issuer.includes("tern local CA"),
  };
}
