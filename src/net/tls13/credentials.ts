// The server's certificate chain and private key, and signing the CertificateVerify content
// with it (RFC 8446 §4.4.3): which schemes a key can sign, and the node:crypto call for each.

import { constants, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { Scheme } from "./suites.ts";

export interface Tls13Credentials {
  /** Certificate chain as DER, leaf first. */
  chain: Uint8Array[];
  /** The leaf's private key: ECDSA P-256 / P-384, RSA ≥ 2048 (signs rsa_pss_rsae_*), or Ed25519. */
  key: KeyObject;
}

/** Builds credentials from PEM (cert chain PEM may hold several certificates). Throws on bad PEM. */
export function tls13Credentials(certPem: string, keyPem: string): Tls13Credentials {
  const chain: Uint8Array[] = [];
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g;
  for (const m of certPem.matchAll(re)) {
    const bin = atob(m[1].replace(/\s+/g, ""));
    chain.push(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  }
  if (chain.length === 0) throw new Error("no certificate in the certificate PEM");
  return { chain, key: createPrivateKey(keyPem) };
}

/** The schemes this key can sign, in the server's order of preference (empty: none). */
export function keySchemes(key: KeyObject): number[] {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec":
      if (details.namedCurve === "prime256v1") return [Scheme.ecdsaSecp256r1Sha256];
      if (details.namedCurve === "secp384r1") return [Scheme.ecdsaSecp384r1Sha384];
      return [];
    case "rsa":
      if ((details.modulusLength ?? 0) < 2048) return [];
      return [Scheme.rsaPssRsaeSha256, Scheme.rsaPssRsaeSha384, Scheme.rsaPssRsaeSha512];
    case "ed25519":
      return [Scheme.ed25519];
    default:
      return [];
  }
}

/** Signs `content` with `scheme` (one that keySchemes returned for this key). */
export function signWith(key: KeyObject, scheme: number, content: Uint8Array): Uint8Array {
  switch (scheme) {
    case Scheme.ecdsaSecp256r1Sha256:
      return sign("sha256", content, { key, dsaEncoding: "der" });
    case Scheme.ecdsaSecp384r1Sha384:
      return sign("sha384", content, { key, dsaEncoding: "der" });
    case Scheme.rsaPssRsaeSha256:
      return sign("sha256", content, pss(key, 32));
    case Scheme.rsaPssRsaeSha384:
      return sign("sha384", content, pss(key, 48));
    case Scheme.rsaPssRsaeSha512:
      return sign("sha512", content, pss(key, 64));
    case Scheme.ed25519:
      return sign(null, content, key);
    default:
      throw new Error(`cannot sign with scheme ${scheme}`);
  }
}

/** RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (RFC 8446 §4.2.3). */
function pss(key: KeyObject, saltLength: number) {
  return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength };
}
