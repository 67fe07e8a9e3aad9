// ACME (RFC 8555) certificates over HTTP-01 for the mail domain and its mta-sts. and www. names.
// Keeps the account key, the certificate chain and its key in one directory (all 0600), renews
// when less than 30 days (or a third of the lifetime) remain, and never throws at the relay: a
// failed attempt keeps the current certificate (or the self-signed fallback) and is retried later
// with exponential backoff. The HTTP listener answers challenges through challengeResponse().

import type * as Acme from "acme-client";
import { createPublicKey, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/mod.ts";
import { silentLogger } from "../log/mod.ts";
import { type Resolve, resolvingFetch } from "../net/mod.ts";

export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";
export const LETS_ENCRYPT_STAGING_DIRECTORY =
  "https://acme-staging-v02.api.letsencrypt.org/directory";

/**
 * acme-client (with axios and node-forge: about 4 MB of heap once loaded) is loaded at the first
 * certificate request, so a relay without ACME, or with a valid certificate, never holds it.
 */
let acmeLib: Promise<typeof Acme> | null = null;
const loadAcme = () => acmeLib ??= import("acme-client");

const DAY = 86_400_000;
const HOUR = 3_600_000;

export type AcmeResult = "issued" | "renewed" | "valid" | "failed";

export interface AcmeOptions {
  /** ACME directory, e.g. LETS_ENCRYPT_DIRECTORY. */
  directoryUrl: string;
  /** Contact address registered with the account ("" or undefined: none). */
  email?: string;
  /** Names for the certificate; the first is the primary one and must always validate. */
  domains: string[];
  /** Where the account key, cert.pem, key.pem and meta.json live (created 0700). */
  dir: string;
  /** Clock for renewal decisions (tests); defaults to Date.now. */
  now?: () => number;
  log?: Logger;
  /** Extra CAs to trust for the ACME API (test servers such as pebble). */
  caCerts?: string[];
  /**
   * Finds the ACME server's addresses (the relay's resolver when dns_server is set); without
   * it the system's resolver is used.
   */
  resolve?: Resolve;
  /**
   * Retries per ACME request on network errors, 429 and 5xx (acme-client's own, with waits of
   * 5 s and more that stop() cannot cut short); default 0: the whole attempt is retried later.
   */
  requestRetries?: number;
  /** Timeout per ACME request, ms (default 30 s). */
  requestTimeoutMs?: number;
  /** First delay when polling authorizations or the order, ms (default 2 s, doubling to 10 s). */
  pollMs?: number;
  /** Give up waiting for the CA's validation after this long, ms (default 2 min). */
  pollTimeoutMs?: number;
  /** First retry after a failed attempt, ms (default 5 min); doubles up to the check interval. */
  retryMinMs?: number;
  /** Renew when less than this many days remain (default 30; capped at a third of the life). */
  renewBeforeDays?: number;
}

export interface AcmeCertificateFiles {
  certPath: string;
  keyPath: string;
}

export interface AcmeState {
  lastResult: AcmeResult | null;
  lastCheckAt: number | null;
  /** Why the last attempt failed, or which names could not be validated. */
  lastError: string | null;
  /** Failed attempts since the last success. */
  failures: number;
  /** When start()'s loop checks next (null when not started). */
  nextCheckAt: number | null;
  certificate: { names: string[]; validFrom: Date; validTo: Date; serial: string } | null;
}

interface CurrentCertificate {
  names: string[];
  validFrom: Date;
  validTo: Date;
  serial: string;
  directoryUrl: string | null;
}

type AxiosConfig = Parameters<
  NonNullable<Parameters<typeof Acme.axios.interceptors.request.use>[0]>
>[0];
type AxiosAdapter = Extract<NonNullable<AxiosConfig["adapter"]>, (...args: never[]) => unknown>;

interface OrderOutcome {
  /** Names whose authorization is valid. */
  valid: string[];
  /** Names that failed, with the reason. */
  failed: Map<string, string>;
  order: Acme.Order;
}

/** Names to request for a relay: domain, mta-sts.domain, www.domain (+ a distinct hostname). */
export function acmeDomains(domain: string, hostname?: string): string[] {
  if (isIpLiteral(domain)) return [];
  const names = [domain, `mta-sts.${domain}`, `www.${domain}`];
  if (hostname && !isIpLiteral(hostname) && !names.includes(hostname)) names.push(hostname);
  return names.map((n) => n.toLowerCase());
}

export function isIpLiteral(name: string): boolean {
  const bare = name.replace(/^\[|\]$/g, "");
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(bare) || bare.includes(":");
}

/** Delay before retry number `failures` (1-based): min · 2^(failures−1), at most max. */
export function retryDelay(failures: number, minMs: number, maxMs: number): number {
  return Math.min(minMs * 2 ** Math.max(0, Math.min(failures - 1, 30)), maxMs);
}

/** When a certificate valid from..to should be renewed. */
export function renewalTime(validFrom: Date, validTo: Date, renewBeforeDays = 30): number {
  const life = validTo.getTime() - validFrom.getTime();
  return validTo.getTime() - Math.min(renewBeforeDays * DAY, life / 3);
}

export class AcmeManager {
  readonly domains: string[];
  readonly certPath: string;
  readonly keyPath: string;
  private readonly accountKeyPath: string;
  private readonly metaPath: string;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly tokens = new Map<string, string>();
  private running: Promise<AcmeResult> | null = null;
  private loop: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private started = false;
  private release: (() => void) | null = null;
  private networkError: string | null = null;
  private abort: AbortController | null = null;
  private st: AcmeState = {
    lastResult: null,
    lastCheckAt: null,
    lastError: null,
    failures: 0,
    nextCheckAt: null,
    certificate: null,
  };

  constructor(private readonly options: AcmeOptions) {
    const domains = [...new Set(options.domains.map((d) => d.toLowerCase()))];
    if (domains.length === 0) throw new Error("ACME needs at least one domain name");
    const ip = domains.find(isIpLiteral);
    if (ip) throw new Error(`ACME HTTP-01 cannot certify an IP address: ${ip}`);
    this.domains = domains;
    this.certPath = join(options.dir, "cert.pem");
    this.keyPath = join(options.dir, "key.pem");
    this.accountKeyPath = join(options.dir, "account-key.pem");
    this.metaPath = join(options.dir, "meta.json");
    this.now = options.now ?? Date.now;
    this.log = options.log ?? silentLogger;
  }

  /** The key authorization for an HTTP-01 token of an order in progress, else null. */
  challengeResponse(token: string): string | null {
    return this.tokens.get(token) ?? null;
  }

  /** The ACME certificate and key when one is on disk, matches its key and has not expired. */
  certificateFiles(): AcmeCertificateFiles | null {
    const current = this.current();
    if (!current || current.validTo.getTime() <= this.now()) return null;
    return { certPath: this.certPath, keyPath: this.keyPath };
  }

  state(): AcmeState {
    const c = this.current();
    return {
      ...this.st,
      certificate: c
        ? { names: c.names, validFrom: c.validFrom, validTo: c.validTo, serial: c.serial }
        : null,
    };
  }

  /**
   * Issues a certificate when none covers the names, renews one that is due, else reports it
   * valid. Never throws; concurrent calls share one attempt.
   */
  ensureCertificate(): Promise<AcmeResult> {
    if (!this.running) {
      this.running = this.attempt().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /**
   * Checks now and then every intervalMs (after a failure sooner, with backoff); calls
   * onNewCertificate after each issuance or renewal so the caller reloads its TLS material.
   */
  start(intervalMs = 12 * HOUR, onNewCertificate: () => Promise<void> = () => Promise.resolve()) {
    if (this.started) return;
    this.started = true;
    const tick = () => {
      this.timer = undefined;
      this.loop = (async () => {
        const result = await this.ensureCertificate();
        if (result === "issued" || result === "renewed") {
          try {
            await onNewCertificate();
          } catch (err) {
            this.log.error("acme: reloading the new certificate failed", { err });
          }
        }
        if (!this.started) return;
        const delay = result === "failed"
          ? retryDelay(this.st.failures, this.options.retryMinMs ?? 5 * 60_000, intervalMs)
          : intervalMs;
        this.st.nextCheckAt = Date.now() + delay;
        this.timer = setTimeout(tick, delay);
      })();
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops the loop and waits for an attempt in progress. */
  async stop(): Promise<void> {
    this.started = false;
    this.abort?.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.st.nextCheckAt = null;
    await this.loop;
    await this.running;
  }

  // --- internals ---

  private current(): CurrentCertificate | null {
    try {
      if (!existsSync(this.certPath) || !existsSync(this.keyPath)) return null;
      const certPem = readFileSync(this.certPath, "utf8");
      const keyPem = readFileSync(this.keyPath, "utf8");
      const cert = new X509Certificate(certPem);
      const spki = (k: { export(o: { type: "spki"; format: "der" }): Buffer }) =>
        k.export({ type: "spki", format: "der" });
      if (!spki(cert.publicKey).equals(spki(createPublicKey(keyPem)))) return null;
      let directoryUrl: string | null = null;
      try {
        directoryUrl = JSON.parse(readFileSync(this.metaPath, "utf8")).directoryUrl ?? null;
      } catch { /* no metadata: accept the certificate as it is */ }
      return {
        names: (cert.subjectAltName ?? "").split(/,\s*/)
          .filter((s) => s.startsWith("DNS:"))
          .map((s) => s.slice(4).toLowerCase()),
        validFrom: new Date(cert.validFrom),
        validTo: new Date(cert.validTo),
        serial: cert.serialNumber,
        directoryUrl,
      };
    } catch {
      return null;
    }
  }

  private async attempt(): Promise<AcmeResult> {
    const now = this.now();
    this.st.lastCheckAt = now;
    const current = this.current();
    const coversAll = !!current && this.domains.every((d) => current.names.includes(d));
    const sameCa = !!current &&
      (current.directoryUrl === null || current.directoryUrl === this.options.directoryUrl);
    const due = !current ||
      now >= renewalTime(current.validFrom, current.validTo, this.options.renewBeforeDays);
    if (current && coversAll && sameCa && !due) return this.finish("valid", null);
    const renewing = !!current && coversAll && sameCa;
    this.networkError = null;
    try {
      const acme = await loadAcme();
      const client = await this.client(acme);
      const first = await this.order(client, this.domains);
      let outcome = first;
      let note: string | null = null;
      if (first.failed.size > 0) {
        note = [...first.failed].map(([n, why]) => `${n}: ${why}`).join("; ");
        const primary = this.domains[0];
        if (!first.valid.includes(primary)) throw new Error(note);
        // Some extra name (often www. without DNS) failed: settle for the names that validated,
        // unless the certificate in use already covers them and is not due.
        const improves = !current || due || !sameCa ||
          first.valid.some((n) => !current.names.includes(n));
        if (!improves) {
          this.log.system(`acme: keeping the current certificate; not validated: ${note}`);
          return this.finish("valid", note);
        }
        this.log.system(`acme: requesting a certificate without names that failed: ${note}`);
        outcome = await this.order(client, first.valid);
        if (outcome.failed.size > 0) {
          throw new Error([...outcome.failed].map(([n, why]) => `${n}: ${why}`).join("; "));
        }
      }
      const names = [this.domains[0], ...outcome.valid.filter((n) => n !== this.domains[0])];
      const keyPem = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
      const [, csr] = await acme.crypto.createCsr(
        { commonName: names[0], altNames: names },
        keyPem,
      );
      let finalized = await client.finalizeOrder(outcome.order, csr);
      finalized = await this.poll("order", () => client.getOrder(finalized), (o) => o.status);
      const chainPem = await client.getCertificate(finalized);
      this.save(chainPem, keyPem);
      const result: AcmeResult = renewing ? "renewed" : "issued";
      const info = this.current();
      this.log.system(
        `acme: certificate ${result} for ${names.join(", ")}, valid until ${
          info?.validTo.toISOString() ?? "?"
        }`,
      );
      return this.finish(result, note);
    } catch (err) {
      // After its retries acme-client turns a network error into a TypeError about "config".
      const why = err instanceof TypeError && this.networkError
        ? `ACME server unreachable: ${this.networkError}`
        : err instanceof Error
        ? err.message
        : String(err);
      this.st.failures++;
      this.log.system(
        `acme: certificate request failed (${
          current ? "keeping the current certificate" : "using the self-signed one"
        }): ${why}`,
      );
      return this.finish("failed", why);
    } finally {
      this.tokens.clear();
      this.release?.();
      this.release = null;
    }
  }

  private finish(result: AcmeResult, error: string | null): AcmeResult {
    this.st.lastResult = result;
    this.st.lastError = error;
    if (result !== "failed") this.st.failures = 0;
    return result;
  }

  /** An ACME client with the account registered (or found again by its key). */
  private async client(acme: typeof Acme): Promise<Acme.Client> {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    let accountKey: string;
    if (existsSync(this.accountKeyPath)) {
      accountKey = readFileSync(this.accountKeyPath, "utf8");
    } else {
      accountKey = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
      writePrivate(this.accountKeyPath, accountKey);
    }
    this.release?.();
    this.scopeRequests(acme);
    // Status polling is done here (abortable), not with the client's backoff.
    const client = new acme.Client({ directoryUrl: this.options.directoryUrl, accountKey });
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(this.options.email ? { contact: [`mailto:${this.options.email}`] } : {}),
    });
    return client;
  }

  /**
   * acme-client talks through one shared axios instance. Requests to this manager's ACME server
   * go through Deno's fetch with this manager's TLS trust, timeout and retry budget while an
   * attempt runs; network errors are remembered because the library reports them badly.
   */
  private scopeRequests(acme: typeof Acme) {
    const origin = new URL(this.options.directoryUrl).origin;
    const httpClient = Deno.createHttpClient({ caCerts: this.options.caCerts ?? [] });
    const send: (url: URL, init: RequestInit) => Promise<Response> = this.options.resolve
      ? resolvingFetch(this.options.resolve, { caCerts: this.options.caCerts })
      : (url, init) => fetch(url, { ...init, client: httpClient });
    const retries = this.options.requestRetries ?? 0;
    const abort = this.abort = new AbortController();
    const timeout = this.options.requestTimeoutMs ?? 30_000;
    const adapter: AxiosAdapter = async (config) => {
      const headers = new Headers();
      const given = config.headers?.toJSON?.() ?? {};
      for (const [k, v] of Object.entries(given)) {
        if (v !== undefined && v !== null) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
      }
      let res: Response;
      try {
        res = await send(new URL(config.url!, origin), {
          method: (config.method ?? "get").toUpperCase(),
          headers,
          body: config.data ?? undefined,
          signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeout)]),
        });
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error
          ? `: ${err.cause.message}`
          : "";
        const message = `${config.url}: ${
          err instanceof Error ? err.message : String(err)
        }${cause}`;
        this.networkError = message;
        throw Object.assign(new Error(message), {
          config,
          code: abort.signal.aborted || (err instanceof DOMException && err.name === "TimeoutError")
            ? "ECONNABORTED"
            : "ERR_NETWORK",
        });
      }
      const response = {
        data: await res.text(),
        status: res.status,
        statusText: res.statusText,
        headers: Object.fromEntries(res.headers),
        config,
        request: {},
      };
      if (config.validateStatus && !config.validateStatus(res.status)) {
        throw Object.assign(new Error(`Request failed with status code ${res.status}`), {
          config,
          response,
          isAxiosError: true,
        });
      }
      return response;
    };
    const id = acme.axios.interceptors.request.use((config) => {
      if (config.url && new URL(config.url, origin).origin === origin) {
        config.adapter = adapter;
        if (!("retryAttempt" in config)) {
          // The library retries while retryAttempt <= retryMaxAttempts; start it further on.
          const defaults = acme.axios.defaults as { acmeSettings?: { retryMaxAttempts?: number } };
          const max = defaults.acmeSettings?.retryMaxAttempts ?? 5;
          (config as { retryAttempt?: number }).retryAttempt = Math.max(0, max - retries);
        }
      }
      return config;
    });
    this.release = () => {
      acme.axios.interceptors.request.eject(id);
      httpClient.close();
      if (this.abort === abort) this.abort = null;
    };
  }

  /** Places an order and answers every authorization's HTTP-01 challenge. */
  private async order(client: Acme.Client, names: string[]): Promise<OrderOutcome> {
    const order = await client.createOrder({
      identifiers: names.map((value) => ({ type: "dns", value })),
    });
    const failed = new Map<string, string>();
    let authorizations = await client.getAuthorizations(order);
    for (const authz of authorizations) {
      const name = authz.identifier.value.toLowerCase();
      if (authz.status !== "pending") continue;
      const challenge = authz.challenges.find((c) => c.type === "http-01");
      if (!challenge) {
        failed.set(name, "the CA offered no http-01 challenge");
        continue;
      }
      this.tokens.set(challenge.token, await client.getChallengeKeyAuthorization(challenge));
      if (challenge.status === "pending") await client.completeChallenge(challenge);
    }
    try {
      const pending = () => authorizations.some((a) => a.status === "pending");
      if (pending()) {
        await this.poll("authorizations", async () => {
          authorizations = await client.getAuthorizations(order);
          return authorizations;
        }, () => (pending() ? "pending" : "valid"));
      }
    } catch (err) {
      if (!(err instanceof PollTimeout)) throw err;
    } finally {
      this.tokens.clear();
    }
    const valid: string[] = [];
    for (const authz of authorizations) {
      const name = authz.identifier.value.toLowerCase();
      if (authz.status === "valid") valid.push(name);
      else if (!failed.has(name)) failed.set(name, authorizationError(authz));
    }
    return { valid: names.filter((n) => valid.includes(n)), failed, order };
  }

  /** Fetches until status is neither pending nor processing, sleeping between (abortable). */
  private async poll<T>(
    what: string,
    fetchIt: () => Promise<T>,
    status: (t: T) => string,
  ): Promise<T> {
    const signal = this.abort?.signal;
    const pollMs = this.options.pollMs ?? 2000;
    const deadline = Date.now() + (this.options.pollTimeoutMs ?? 120_000);
    for (let i = 0;; i++) {
      const item = await fetchIt();
      const s = status(item);
      if (s !== "pending" && s !== "processing") {
        if (s === "invalid") {
          const e = (item as { error?: { detail?: string } }).error;
          throw new Error(`${what} became invalid${e?.detail ? `: ${e.detail}` : ""}`);
        }
        return item;
      }
      if (Date.now() >= deadline) throw new PollTimeout(`${what} still ${s}`);
      await sleep(Math.min(pollMs * 2 ** Math.min(i, 10), 10_000), signal);
    }
  }

  private save(chainPem: string, keyPem: string) {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    // Key first, then chain: a crash in between leaves a mismatched pair that current() rejects,
    // so the next start uses the self-signed fallback until the next attempt.
    writePrivate(this.keyPath, keyPem);
    writePrivate(this.certPath, chainPem.endsWith("\n") ? chainPem : chainPem + "\n");
    writePrivate(
      this.metaPath,
      JSON.stringify({
        directoryUrl: this.options.directoryUrl,
        issuedAt: new Date().toISOString(),
      }) +
        "\n",
    );
  }
}

class PollTimeout extends Error {}

function authorizationError(authz: Acme.Authorization): string {
  for (const c of authz.challenges) {
    const e = c.error as { detail?: string; type?: string } | undefined;
    if (e) return e.detail ?? e.type ?? JSON.stringify(e);
  }
  return `authorization ${authz.status}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error("stopped"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error("stopped"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function writePrivate(path: string, text: string) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
