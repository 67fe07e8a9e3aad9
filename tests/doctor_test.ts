// tern doctor against a local DNS server (Debian's dnsmasq) and a running relay: correct records
// are OK, missing ones WARN or FAIL with the fix, listeners answer, certificate and disk checked.

import assert from "node:assert/strict";
import { freePort, runTern } from "./support/util.ts";
import { fakeDns, withRelay } from "./support/relay.ts";
import { runDoctor } from "../src/app/doctor.ts";
import { dkimKey } from "../src/app/federation.ts";
import { dkimDnsRecord } from "../src/federation/mod.ts";

Deno.test("tern doctor reads DNS, probes listeners and checks the certificate", async () => {
  await withRelay(async (t) => {
    const dnsPort = await freePort();
    const record = dkimDnsRecord(dkimKey(t.relay.config).privateKeyPem);
    const dnsmasq = new Deno.Command("dnsmasq", {
      args: [
        "--no-daemon",
        "--pid-file=",
        `--port=${dnsPort}`,
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--address=/tern.test/192.0.2.10",
        "--ptr-record=10.2.0.192.in-addr.arpa,tern.test",
        "--mx-host=tern.test,tern.test,10",
        "--txt-record=tern.test,v=spf1 a ~all",
        `--txt-record=opendkim._domainkey.tern.test,${record}`,
        "--txt-record=_dmarc.tern.test,v=DMARC1;p=reject;adkim=s;aspf=s",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const listen = t.relay.addresses;
      const toml = `${t.dir}/doctor.toml`;
      await Deno.writeTextFile(
        toml,
        [
          'domain = "tern.test"',
          `data_dir = "${t.dir}/data"`,
          `dns_server = "127.0.0.1:${dnsPort}"`,
          "[listen]",
          `smtp = "${listen.smtp}"`,
          `submission = "${listen.submission}"`,
          'imap = ""',
        ].join("\n"),
      );
      const r = await runTern(["doctor", "--ip", "192.0.2.10", "--config", toml]);
      const lines = r.stdout;
      assert.match(lines, /^OK\s+DNS A\/AAAA\s+tern\.test has 192\.0\.2\.10$/m, lines + r.stderr);
      assert.match(lines, /^OK\s+DNS MX\s+MX 10 tern\.test$/m, lines);
      assert.match(lines, /^OK\s+DNS PTR\s+192\.0\.2\.10 points back to tern\.test$/m, lines);
      assert.match(lines, /^FAIL\s+public SMTP path\s+tern\.test:25: /m, lines);
      assert.match(lines, /^OK\s+DNS SPF\s+v=spf1 a ~all$/m, lines);
      assert.match(lines, /^OK\s+DNS DKIM\s+opendkim\._domainkey\.tern\.test matches/m, lines);
      assert.match(lines, /^OK\s+DNS DMARC/m, lines);
      assert.match(lines, /^WARN\s+DNS MTA-STS\s+add "_mta-sts\.tern\.test\./m, lines);
      assert.match(lines, /^OK\s+listener smtp\s+127\.0\.0\.1:\d+ answers$/m, lines);
      assert.match(lines, /^WARN\s+listener imap\s+disabled/m, lines);
      assert.match(lines, /^WARN\s+certificate\s+self-signed/m, lines);
      assert.match(lines, /^(OK|WARN|FAIL)\s+disk space\s+[\d.]+ GiB free/m, lines);
      const wrongIp = await runTern(["doctor", "--ip", "198.51.100.1", "--config", toml]);
      assert.equal(wrongIp.code, 1);
      assert.match(
        wrongIp.stdout,
        /^FAIL\s+DNS A\/AAAA\s+tern\.test points to 192\.0\.2\.10, not 198\.51\.100\.1/m,
      );
      await t.relay.close();
      const down = await runTern(["doctor", "--config", toml]);
      assert.equal(down.code, 1);
      assert.match(down.stdout, /^FAIL\s+listener smtp\s+.*is `tern serve` running\?/m);
    } finally {
      try {
        dnsmasq.kill();
      } catch {
        // already gone
      }
      await dnsmasq.status;
      await dnsmasq.stderr.cancel();
    }
  }, { overrides: { domain: "tern.test" } });
});

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
