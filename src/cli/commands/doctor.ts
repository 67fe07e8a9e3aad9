// tern doctor: DNS records, listeners, certificate, disk space and body files, each
// OK/WARN/FAIL with how to fix it. Exits 1 when a check fails.

import { runDoctor } from "../../app/doctor.ts";
import { systemResolver } from "../../federation/mod.ts";
import { configFrom, parse } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern doctor [--ip ADDRESS]";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { ip: { type: "string" } });
  const config = configFrom(values, io);
  const checks = await runDoctor(config, {
    dns: systemResolver(config.dnsServer),
    expectedIp: values.ip as string | undefined,
  });
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const c of checks) io.out(`${c.level.padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail}`);
  const failed = checks.filter((c) => c.level === "FAIL").length;
  const warned = checks.filter((c) => c.level === "WARN").length;
  io.out(`\n${failed} failed, ${warned} warnings, ${checks.length - failed - warned} ok`);
  return failed ? 1 : 0;
}
