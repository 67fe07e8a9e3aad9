// tern doctor: checks what an operator gets wrong (DNS records, listeners, certificate, disk
// space, damaged body files) and says how to fix each. Every check is OK, WARN or FAIL with its
// reason.

import { join } from "node:path";
import { existsSync, statfsSync } from "node:fs";
import * as net from "node:net";
import type { Config } from "../config/mod.ts";
import { describeCertificate, loadTlsMaterial, parseHostPort } from "../net/mod.ts";
import { DKIM_SELECTOR, dkimDnsRecord, type DnsResolver, sendSmtp } from "../federation/mod.ts";
import { dkimKey } from "./federation.ts";
import { databasePath } from "./data_dir.ts";
import { checkBodyFiles } from "../store/sqlite/body_check.ts";

export type Level = "OK" | "WARN" | "FAIL";

export interface Check {
  name: string;
  level: Level;
  detail: string;
}

const DAY = 86_400_000;

async function txt(dns: DnsResolver, name: string): Promise<string[]> {
  try {
    return await dns.txt(name);
  } catch {
    return [];
  }
}

function normaliseRecord(s: string): string {
  return s.replace(/[\s"]/g, "");
}

async function dnsChecks(config: Config, dns: DnsResolver, expectedIp?: string): Promise<Check[]> {
  const d = config.domain;
  const out: Check[] = [];
  let addresses: string[] = [];
  try {
    addresses = await dns.addresses(d);
  } catch (err) {
    out.push({ name: "DNS A/AAAA", level: "FAIL", detail: `${d}: ${(err as Error).message}` });
  }
  if (addresses.length) {
    const mismatch = expectedIp && !addresses.includes(expectedIp);
    out.push({
      name: "DNS A/AAAA",
      level: mismatch ? "FAIL" : "OK",
      detail: mismatch
        ? `${d} points to ${addresses.join(", ")}, not ${expectedIp}: fix the A record`
        : `${d} has ${addresses.join(", ")}`,
    });
  } else if (!out.length) {
    out.push({ name: "DNS A/AAAA", level: "FAIL", detail: `${d} has no address: add an A record` });
  }
  const v4 = addresses.find((a) => !a.includes(":"));
  if (v4 && dns.ptr) {
    const names = await dns.ptr(v4).catch(() => [] as string[]);
    const ok = names.some((n) => n.toLowerCase() === config.hostname.toLowerCase());
    out.push({
      name: "DNS PTR",
      level: ok ? "OK" : "WARN",
      detail: ok
        ? `${v4} points back to ${config.hostname}`
        : `set the reverse DNS (PTR) of ${v4} to ${config.hostname} at your hosting provider (now: ${
          names.join(", ") || "none"
        }); some mail servers refuse mail otherwise`,
    });
  }
  try {
    const mx = await dns.mx(d);
    const ok = mx.some((m) => m.exchange.toLowerCase() === config.hostname.toLowerCase());
    out.push({
      name: "DNS MX",
      level: ok ? "OK" : "FAIL",
      detail: ok
        ? `MX ${mx.map((m) => `${m.preference} ${m.exchange}`).join(", ")}`
        : `add "${d}. MX 10 ${config.hostname}." (found: ${
          mx.map((m) => m.exchange).join(", ") || "none"
        })`,
    });
  } catch (err) {
    out.push({ name: "DNS MX", level: "FAIL", detail: `MX ${d}: ${(err as Error).message}` });
  }
  const spf = (await txt(dns, d)).find((r) => r.startsWith("v=spf1"));
  out.push(
    spf
      ? { name: "DNS SPF", level: "OK", detail: spf }
      : { name: "DNS SPF", level: "WARN", detail: `add "${d}. TXT \\"v=spf1 a ~all\\""` },
  );
  const want = dkimDnsRecord(dkimKey(config).privateKeyPem);
  const dkim = await txt(dns, `${DKIM_SELECTOR}._domainkey.${d}`);
  const dkimOk = dkim.some((r) => normaliseRecord(r) === normaliseRecord(want));
  out.push({
    name: "DNS DKIM",
    level: dkimOk ? "OK" : "FAIL",
    detail: dkimOk
      ? `${DKIM_SELECTOR}._domainkey.${d} matches this relay's key`
      : dkim.length
      ? `${DKIM_SELECTOR}._domainkey.${d} does not match this relay's key; publish the one \`tern dns\` prints`
      : `publish ${DKIM_SELECTOR}._domainkey.${d} (see \`tern dns\`): other relays refuse unsigned mail`,
  });
  const dmarc = (await txt(dns, `_dmarc.${d}`)).find((r) => r.startsWith("v=DMARC1"));
  out.push(
    dmarc ? { name: "DNS DMARC", level: "OK", detail: dmarc } : {
      name: "DNS DMARC",
      level: "WARN",
      detail: `add "_dmarc.${d}. TXT \\"v=DMARC1;p=reject;adkim=s;aspf=s\\""`,
    },
  );
  const sts = (await txt(dns, `_mta-sts.${d}`)).find((r) => r.startsWith("v=STSv1"));
  out.push(
    sts ? { name: "DNS MTA-STS", level: "OK", detail: sts } : {
      name: "DNS MTA-STS",
      level: "WARN",
      detail: `add "_mta-sts.${d}. TXT \\"v=STSv1; id=...\\"" (see \`tern dns\`)`,
    },
  );
  return out;
}

function probe(address: string, expect: RegExp, timeoutMs = 3000): Promise<string | null> {
  const { host, port } = parseHostPort(address);
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return new Promise((resolve) => {
    const s = net.connect({ host: target, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve("no answer within 3 s");
    }, timeoutMs);
    s.once("error", (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
    s.once("data", (d: Uint8Array) => {
      clearTimeout(timer);
      s.destroy();
      const text = new TextDecoder().decode(d);
      resolve(expect.test(text) ? null : `unexpected greeting "${text.trim().slice(0, 60)}"`);
    });
  });
}

async function listenerChecks(config: Config): Promise<Check[]> {
  const plain: [string, RegExp][] = [["smtp", /^220 /], ["submission", /^220 /], [
    "imap",
    /^\* OK /,
  ]];
  const out: Check[] = [];
  for (const [name, expect] of plain) {
    const address = config.listen[name as keyof Config["listen"]];
    if (!address) {
      out.push({ name: `listener ${name}`, level: "WARN", detail: "disabled in the config" });
      continue;
    }
    const problem = await probe(address, expect);
    out.push(
      problem
        ? {
          name: `listener ${name}`,
          level: "FAIL",
          detail:
            `${address}: ${problem} (is \`tern serve\` running? is the port open in the firewall?)`,
        }
        : { name: `listener ${name}`, level: "OK", detail: `${address} answers` },
    );
  }
  return out;
}

async function certificateCheck(config: Config, now: number): Promise<Check> {
  try {
    const m = await loadTlsMaterial({
      certFile: config.tlsCert || undefined,
      keyFile: config.tlsKey || undefined,
      dir: join(config.dataDir, "tls"),
      names: [config.hostname, config.domain, "localhost", "127.0.0.1"],
    });
    const info = describeCertificate(m.certPem);
    const left = Math.floor((info.validTo.getTime() - now) / DAY);
    const wanted = config.isIpDomain
      ? [config.mailDomain.replace(/^\[|\]$/g, "")]
      : [config.hostname];
    const missing = wanted.filter((n) => !info.names.includes(n));
    if (left < 0) {
      return { name: "certificate", level: "FAIL", detail: `expired ${-left} days ago` };
    }
    if (missing.length) {
      return { name: "certificate", level: "FAIL", detail: `does not name ${missing.join(", ")}` };
    }
    if (info.selfSigned) {
      return {
        name: "certificate",
        level: config.isIpDomain ? "OK" : "WARN",
        detail: config.isIpDomain
          ? "self-signed (expected for an IP relay; clients are told to accept it)"
          : "self-signed: set tls_cert/tls_key or acme_email so other relays and clients trust it",
      };
    }
    return {
      name: "certificate",
      level: left < 14 ? "WARN" : "OK",
      detail: `${info.names.join(", ")}, valid ${left} more days`,
    };
  } catch (err) {
    return { name: "certificate", level: "FAIL", detail: (err as Error).message };
  }
}

function diskCheck(config: Config): Check {
  try {
    const s = statfsSync(config.dataDir);
    const free = Number(s.bavail) * Number(s.bsize);
    const total = Number(s.blocks) * Number(s.bsize);
    const pct = total ? Math.round((free / total) * 100) : 0;
    const gib = (free / 2 ** 30).toFixed(1);
    return {
      name: "disk space",
      level: free < 1 * 2 ** 30 || pct < 5 ? "FAIL" : pct < 15 ? "WARN" : "OK",
      detail: `${gib} GiB free (${pct} %) in ${config.dataDir}`,
    };
  } catch (err) {
    return {
      name: "disk space",
      level: "FAIL",
      detail: `${config.dataDir}: ${(err as Error).message}`,
    };
  }
}

/** Every body file the database points into exists and is whole (SQLite store). */
function bodyFilesCheck(config: Config): Check | null {
  const db = databasePath(config.dataDir);
  if (config.store !== "sqlite" || !existsSync(db)) return null;
  const name = "body files";
  try {
    const r = checkBodyFiles(db, join(config.dataDir, "bodies"));
    if (!r.problems.length) {
      return { name, level: "OK", detail: `${r.files} body files, all whole` };
    }
    const n = (k: number) => `${k} message${k === 1 ? "" : "s"}`;
    const each = r.problems.map((p) =>
      p.problem === "missing"
        ? `${p.name} is missing (${n(p.messages)})`
        : `${p.name} is cut short (${p.haveBytes} of ${p.needBytes} bytes, ${n(p.messages)})`
    );
    return {
      name,
      level: "FAIL",
      detail: `${r.problems.length} of ${r.files} body files are damaged: ${
        each.join(", ")
      }; their messages cannot be read: restore data_dir/bodies from a backup`,
    };
  } catch (err) {
    return { name, level: "FAIL", detail: `${db}: ${(err as Error).message}` };
  }
}

/**
 * The path other relays take: MX → port 25 → STARTTLS with a certificate valid for the MX host,
 * then a test transaction whose recipient this relay must refuse (nothing is delivered).
 */
async function publicSmtpCheck(
  config: Config,
  dns: DnsResolver,
  port: number,
  caCerts?: string[],
): Promise<Check> {
  const name = "public SMTP path";
  let mx: string;
  let addresses: string[];
  try {
    const records = (await dns.mx(config.domain)).sort((a, b) => a.preference - b.preference);
    mx = records[0]?.exchange ?? config.domain;
    addresses = await dns.addresses(mx);
  } catch (err) {
    return {
      name,
      level: "FAIL",
      detail: `cannot resolve the MX of ${config.domain}: ${(err as Error).message}`,
    };
  }
  if (!addresses.length) return { name, level: "FAIL", detail: `${mx} has no address` };
  const probe = `doctor-${crypto.randomUUID().slice(0, 8)}@${config.domain}`;
  try {
    const [r] = await sendSmtp({
      address: addresses[0],
      port,
      servername: mx,
      insecureTls: false,
      heloName: config.hostname,
      sender: "",
      recipients: [probe],
      data: new TextEncoder().encode(`Subject: doctor\r\n\r\nprobe\r\n`),
      timeoutMs: 10_000,
      caCerts,
    });
    if (r.code >= 200 && r.code < 300) {
      return {
        name,
        level: "WARN",
        detail: `${mx} accepted mail for a non-existent user ${probe}`,
      };
    }
    return {
      name,
      level: "OK",
      detail:
        `${mx}:${port} answers with STARTTLS and a valid certificate, and refuses unknown users`,
    };
  } catch (err) {
    return {
      name,
      level: "FAIL",
      detail: `${mx}:${port}: ${(err as Error).message} (open port ${port}; check the certificate)`,
    };
  }
}

export async function runDoctor(
  config: Config,
  options: {
    dns: DnsResolver;
    expectedIp?: string;
    now?: number;
    /** Tests: where the public SMTP check connects, and which CA it trusts. */
    smtpPort?: number;
    caCerts?: string[];
  },
): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.isIpDomain) {
    checks.push({
      name: "DNS",
      level: "OK",
      detail: `IP relay ${config.mailDomain}: no DNS needed`,
    });
  } else {
    checks.push(...await dnsChecks(config, options.dns, options.expectedIp));
    checks.push(
      await publicSmtpCheck(config, options.dns, options.smtpPort ?? 25, options.caCerts),
    );
  }
  checks.push(...await listenerChecks(config));
  checks.push(await certificateCheck(config, options.now ?? Date.now()));
  checks.push(diskCheck(config));
  const bodies = bodyFilesCheck(config);
  if (bodies) checks.push(bodies);
  return checks;
}
