// tern doctor against a local DNS server (Debian's dnsmasq) and a running relay: correct records
// are OK, missing ones WARN or FAIL with the fix, listeners answer, certificate and disk checked.

import assert from "node:assert/strict";
import { runTern } from "./support/util.ts";
import { fakeDns, type TestRelay, withRelay } from "./support/relay.ts";
import { dnsmasqNeed, startDnsmasq } from "./support/dnsmasq.ts";
import { requireAll, requireRoot, requireTool } from "./support/tools.ts";
import { runDoctor } from "../src/app/doctor.ts";
import { dkimKey } from "../src/app/federation.ts";
import { dkimDnsRecord } from "../src/federation/mod.ts";

// tern.test's address: on loopback, so the doctor's public SMTP probe (port 25 of the MX) stays
// on this machine, and an address no test listens on, so that probe fails.
const IP = "127.77.0.10";

/** dnsmasq with tern.test's records (A, PTR, MX, SPF, DKIM, DMARC; no MTA-STS). */
function ternTestDns(t: TestRelay) {
  const record = dkimDnsRecord(dkimKey(t.relay.config).privateKeyPem);
  return startDnsmasq([
    `--address=/tern.test/${IP}`,
    `--ptr-record=${IP.split(".").reverse().join(".")}.in-addr.arpa,tern.test`,
    "--mx-host=tern.test,tern.test,10",
    "--txt-record=tern.test,v=spf1 a ~all",
    `--txt-record=opendkim._domainkey.tern.test,${record}`,
    "--txt-record=_dmarc.tern.test,v=DMARC1;p=reject;adkim=s;aspf=s",
  ]);
}

async function doctorToml(t: TestRelay, dnsServer: string): Promise<string> {
  const listen = t.relay.addresses;
  const toml = `${t.dir}/doctor.toml`;
  await Deno.writeTextFile(
    toml,
    [
      'domain = "tern.test"',
      `data_dir = "${t.dir}/data"`,
      `dns_server = "${dnsServer}"`,
      "[listen]",
      `smtp = "${listen.smtp}"`,
      `submission = "${listen.submission}"`,
      'imap = ""',
    ].join("\n"),
  );
  return toml;
}

Deno.test(
  dnsmasqNeed.title("tern doctor reads DNS, probes listeners and checks the certificate"),
  { ignore: dnsmasqNeed.ignore },
  async () => {
    await withRelay(async (t) => {
      const dns = await ternTestDns(t);
      try {
        const toml = await doctorToml(t, dns.server);
        const r = await runTern(["doctor", "--ip", IP, "--config", toml]);
        const lines = r.stdout;
        assert.match(
          lines,
          /^OK\s+DNS A\/AAAA\s+tern\.test has 127\.77\.0\.10$/m,
          lines + r.stderr,
        );
        assert.match(lines, /^OK\s+DNS MX\s+MX 10 tern\.test$/m, lines);
        assert.match(lines, /^OK\s+DNS PTR\s+127\.77\.0\.10 points back to tern\.test$/m, lines);
        assert.match(lines, /^FAIL\s+public SMTP path\s+tern\.test:25: /m, lines);
        assert.match(lines, /^OK\s+DNS SPF\s+v=spf1 a ~all$/m, lines);
        assert.match(lines, /^OK\s+DNS DKIM\s+opendkim\._domainkey\.tern\.test matches/m, lines);
        assert.match(lines, /^OK\s+DNS DMARC/m, lines);
        assert.match(lines, /^WARN\s+DNS MTA-STS\s+add "_mta-sts\.tern\.test\./m, lines);
        assert.match(lines, /^OK\s+listener smtp\s+127\.0\.0\.1:\d+ answers$/m, lines);
        assert.match(lines, /^WARN\s+listener imap\s+disabled/m, lines);
        assert.match(lines, /^WARN\s+certificate\s+self-signed/m, lines);
        assert.match(lines, /^(OK|WARN|FAIL)\s+disk space\s+[\d.]+ GiB free/m, lines);
        const wrongIp = await runTern(["doctor", "--ip", "127.77.0.11", "--config", toml]);
        assert.equal(wrongIp.code, 1);
        assert.match(
          wrongIp.stdout,
          /^FAIL\s+DNS A\/AAAA\s+tern\.test points to 127\.77\.0\.10, not 127\.77\.0\.11/m,
        );
        await t.relay.close();
        const down = await runTern(["doctor", "--config", toml]);
        assert.equal(down.code, 1);
        assert.match(down.stdout, /^FAIL\s+listener smtp\s+.*is `tern serve` running\?/m);
      } finally {
        await dns.stop();
      }
    }, { overrides: { domain: "tern.test" } });
  },
);

// With dns_server set, tern asks that server and nothing else: a host file naming tern.test
// (here a private /etc/hosts in a mount namespace of its own) must not change the answer.
const leakNeed = requireAll(dnsmasqNeed, requireRoot(), requireTool("unshare", "mount"));
Deno.test(
  leakNeed.title("with dns_server set, /etc/hosts does not change what tern resolves"),
  { ignore: leakNeed.ignore },
  async () => {
    await withRelay(async (t) => {
      const dns = await ternTestDns(t);
      try {
        const toml = await doctorToml(t, dns.server);
        const hosts = `${t.dir}/hosts`;
        await Deno.writeTextFile(hosts, "127.0.0.1 localhost\n127.66.0.1 tern.test\n");
        const root = new URL("../", import.meta.url).pathname;
        const out = await new Deno.Command("unshare", {
          args: [
            "--mount",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            hosts,
            Deno.execPath(),
            "run",
            "-A",
            "main.ts",
            "doctor",
            "--ip",
            IP,
            "--config",
            toml,
          ],
          cwd: root,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dec = new TextDecoder();
        const text = dec.decode(out.stdout) + dec.decode(out.stderr);
        assert.match(text, /^OK\s+DNS A\/AAAA\s+tern\.test has 127\.77\.0\.10$/m, text);
        assert.doesNotMatch(text, /127\.66\.0\.1/, text);
      } finally {
        await dns.stop();
      }
    }, { overrides: { domain: "tern.test" } });
  },
);

Deno.test("doctor's public SMTP path check: MX, STARTTLS with a valid certificate, unknown users refused", async () => {
  await withRelay(async (t) => {
    const dns = fakeDns({
      mx: { "tern.test": [{ preference: 10, exchange: "tern.test" }] },
      addresses: { "tern.test": ["127.0.0.1"] },
    });
    const checks = await runDoctor(t.relay.config, {
      dns,
      smtpPort: t.addr("smtp").port,
      caCerts: [t.caPem],
    });
    const smtp = checks.find((c) => c.name === "public SMTP path")!;
    assert.equal(smtp.level, "OK", smtp.detail);
    const untrusted = await runDoctor(t.relay.config, { dns, smtpPort: t.addr("smtp").port });
    assert.equal(untrusted.find((c) => c.name === "public SMTP path")!.level, "FAIL");
    const closed = await runDoctor(t.relay.config, { dns, smtpPort: 1, caCerts: [t.caPem] });
    assert.match(closed.find((c) => c.name === "public SMTP path")!.detail, /open port 1/);
  }, { overrides: { domain: "tern.test" } });
});
