// TLS material: configured PEM files, or a local CA plus a leaf certificate generated on first
// start (Deno's TLS client rejects a self-signed certificate that is also a CA).

import tls from "node:tls";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

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

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function isIp(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.includes(":");
}

/** Creates a CA and a leaf certificate for the given names (DNS names or IP addresses). */
export async function generateSelfSigned(names: string[], days = 36500): Promise<TlsMaterial> {
  x509.cryptoProvider.set(crypto);
  const unique = [...new Set(names.map((n) => n.replace(/^\[|\]$/g, "")).filter(Boolean))];
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + days * 86400_000);
  const caKeys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=tern local CA ${unique[0] ?? "localhost"}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leafKeys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${unique[0] ?? "localhost"}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        unique.map((n) => ({ type: isIp(n) ? "ip" as const : "dns" as const, value: n })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keyDer = await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey);
  return {
    certPem: leaf.toString("pem") + "\n" + ca.toString("pem") + "\n",
    keyPem: toPem(keyDer, "PRIVATE KEY"),
    caPem: ca.toString("pem") + "\n",
    selfSigned: true,
  };
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
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
    const certPem = readFileSync(options.certFile, "utf8");
    const keyPem = readFileSync(options.keyFile, "utf8");
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

/** TLS versions a listener may require at least (TLS 1.0 and 1.1 are never offered). */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/** A certificate as PEM (HTTPS) and as node:tls contexts, one per minimum TLS version. */
export interface ServerTls {
  certPem: string;
  keyPem: string;
  context(minVersion: TlsVersion): tls.SecureContext;
}

export function createSecureContext(
  m: TlsMaterial,
  minVersion: TlsVersion = "TLSv1.2",
): tls.SecureContext {
  return tls.createSecureContext({ cert: m.certPem, key: m.keyPem, minVersion });
}

export function serverTls(m: TlsMaterial): ServerTls {
  const contexts = new Map<TlsVersion, tls.SecureContext>();
  return {
    certPem: m.certPem,
    keyPem: m.keyPem,
    context(minVersion) {
      let c = contexts.get(minVersion);
      if (!c) contexts.set(minVersion, c = createSecureContext(m, minVersion));
      return c;
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
