// tern dns: the DNS records an operator publishes for the relay's domain. The AAAA record is
// printed when the host has a public IPv6 address (or --ipv6 names one): the listeners are
// dual-stack, and a relay without it refuses no IPv6 client but cannot be found by them.

import { isIP } from "node:net";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";
import { dkimKey } from "../../app/federation.ts";
import { dkimDnsRecord } from "../../federation/mod.ts";
import { isPublicIpv6 } from "../../net/mod.ts";

export const usage = "tern dns [--ip IPV4] [--ipv6 IPV6]";

export function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { ip: { type: "string" }, ipv6: { type: "string" } });
  for (const [flag, family] of [["ip", 4], ["ipv6", 6]] as const) {
    const v = values[flag];
    if (typeof v === "string" && isIP(v) !== family) {
      throw new UsageError(`--${flag} expects an IPv${family} address, got ${JSON.stringify(v)}`);
    }
  }
  const config = configFrom(values, io);
  if (config.isIpDomain) {
    io.out(`${config.mailDomain} is an IP relay: no DNS records are needed (and none are signed).`);
    return Promise.resolve(0);
  }
  const d = config.domain;
  const ip = (values.ip as string | undefined) ?? "<server IPv4>";
  const ipv6 = (values.ipv6 as string | undefined) ?? publicIpv6();
  const key = dkimKey(config);
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 12);
  const lines = [
    `${d}.\t\t\tA\t${ip}`,
    ...(ipv6 ? [`${d}.\t\t\tAAAA\t${ipv6}`] : []),
    `${d}.\t\t\tMX\t10 ${d}.`,
    `${d}.\t\t\tTXT\t"v=spf1 a ~all"`,
    `_dmarc.${d}.\t\tTXT\t"v=DMARC1;p=reject;adkim=s;aspf=s"`,
    `${key.selector}._domainkey.${d}.\tTXT\t"${dkimDnsRecord(key.privateKeyPem)}"`,
    `_mta-sts.${d}.\t\tTXT\t"v=STSv1; id=${stamp}"`,
    `mta-sts.${d}.\t\tCNAME\t${d}.`,
    `www.${d}.\t\tCNAME\t${d}.`,
    `_submission._tcp.${d}.\tSRV\t0 1 587 ${d}.`,
    `_submissions._tcp.${d}.\tSRV\t0 1 465 ${d}.`,
    `_imap._tcp.${d}.\t\tSRV\t0 1 143 ${d}.`,
    `_imaps._tcp.${d}.\t\tSRV\t0 1 993 ${d}.`,
  ];
  for (const l of lines) io.out(l);
  return Promise.resolve(0);
}

/** The first public IPv6 address of this host's interfaces, if it has one. */
function publicIpv6(): string | undefined {
  try {
    return Deno.networkInterfaces().find((i) => i.family === "IPv6" && isPublicIpv6(i.address))
      ?.address;
  } catch (err) {
    // Without --allow-sys the interfaces cannot be listed: no AAAA unless --ipv6 is given.
    if (err instanceof Deno.errors.NotCapable) return undefined;
    throw err;
  }
}
