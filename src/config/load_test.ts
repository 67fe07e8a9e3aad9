import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseDuration, parseSize } from "./load.ts";

Deno.test("loadConfig() applies chatmail defaults", () => {
  const { config, warnings } = loadConfig({ fileText: 'domain = "chat.example.org"' });
  assert.deepEqual(warnings, []);
  assert.equal(config.mailDomain, "chat.example.org");
  assert.equal(config.hostname, "chat.example.org");
  assert.equal(config.limits.maxMessageBytes, 31457280);
  assert.equal(config.limits.maxMailboxBytes, 500 * 1024 * 1024);
  assert.equal(config.limits.sendPerMinute, 60);
  assert.equal(config.limits.sendBurst, 10);
  assert.equal(config.limits.usernameMinLength, 9);
  assert.equal(config.retention.deleteMailsAfterDays, 20);
  assert.equal(config.retention.deleteLargeAfterDays, 7);
  assert.equal(config.retention.deleteInactiveUsersAfterDays, 90);
  // Dual-stack listeners, as Dovecot's `listen = *, ::` and Postfix's `inet_protocols = all`.
  assert.equal(config.listen.submission, "[::]:587");
  assert.equal(config.listen.smtp, "[::]:25");
  // The reference relay's TLS policy: STARTTLS required on 25 (TLS ≥ 1.2), TLS 1.3 for clients.
  assert.deepEqual(config.tlsPolicy, {
    smtpRequireStarttls: true,
    smtpMinVersion: "TLSv1.2",
    clientMinVersion: "TLSv1.3",
    imapEngine: "tern",
  });
  assert.equal(config.shutdownGraceMs, 10_000);
  assert.equal(config.irohRelay, null, "unset: the embedded relay");
  assert.ok(Object.isFrozen(config.limits));
});

Deno.test("loadConfig() takes imap_tls_engine as tern or node, and refuses another name", () => {
  const load = (v: string) => loadConfig({ fileText: `domain = "a.org"\nimap_tls_engine = ${v}` });
  assert.equal(load('"node"').config.tlsPolicy.imapEngine, "node");
  assert.equal(load('"tern"').config.tlsPolicy.imapEngine, "tern");
  assert.throws(() => load('"openssl"'), (e) =>
    e instanceof ConfigError &&
    e.problems.some((p) => /^imap_tls_engine .*expected one of tern, node, got "openssl"/.test(p)));
  const env = loadConfig({ fileText: 'domain = "a.org"', env: { TERN_IMAP_TLS_ENGINE: "node" } });
  assert.equal(env.config.tlsPolicy.imapEngine, "node");
});

Deno.test("loadConfig() takes iroh_relay as an external URL or empty, and refuses other text", () => {
  const load = (v: string) => loadConfig({ fileText: `domain = "a.org"\niroh_relay = ${v}` });
  assert.equal(load('"https://relay.example.net"').config.irohRelay, "https://relay.example.net");
  assert.equal(load('""').config.irohRelay, "");
  assert.throws(() => load('"relay.example.net"'), ConfigError);
  assert.throws(() => load('"ftp://relay.example.net"'), ConfigError);
});

Deno.test("loadConfig() refuses a domain or host name of four numbers that is no IPv4 address", () => {
  // "010.0.0.1" is 8.0.0.1 to inet_aton and 10.0.0.1 to others; the certificate and the address
  // literal would disagree with some clients.
  for (const bad of ["010.0.0.1", "1.2.3.300", "1.02.3.4"]) {
    assert.throws(() => loadConfig({ fileText: `domain = "${bad}"` }), /domain: not an IPv4/, bad);
    assert.throws(
      () => loadConfig({ fileText: `domain = "a.org"\nhostname = "${bad}"` }),
      /hostname: not a valid host name/,
      bad,
    );
  }
});

Deno.test("loadConfig() turns an IPv4 domain into a domain literal", () => {
  const { config } = loadConfig({ fileText: 'domain = "192.0.2.7"' });
  assert.equal(config.mailDomain, "[192.0.2.7]");
  assert.equal(config.isIpDomain, true);
});

Deno.test("loadConfig() layers file < env < flags and disables listeners", () => {
  const { config } = loadConfig({
    fileText:
      'domain = "a.org"\nmax_message_size = "10M"\n[listen]\nsmtp = "127.0.0.1:2525"\nhttp = ""',
    env: { TERN_MAX_MESSAGE_SIZE: "20M", TERN_LISTEN_IMAP: "127.0.0.1:0" },
    overrides: { "listen.imaps": "", log: "debug" },
  });
  assert.equal(config.limits.maxMessageBytes, 20 * 1024 * 1024);
  assert.equal(config.listen.smtp, "127.0.0.1:2525");
  assert.equal(config.listen.http, "");
  assert.equal(config.listen.imap, "127.0.0.1:0");
  assert.equal(config.listen.imaps, "");
  assert.equal(config.log, "debug");
});

Deno.test("loadConfig() reports every wrong type or value with its key", () => {
  try {
    loadConfig({
      fileName: "tern.toml",
      fileText:
        'domain = "bad domain!"\nmax_user_send_per_minute = "lots"\nmax_message_size = "huge"\nlog = "loud"\n[listen]\nsmtp = "nowhere"',
    });
    assert.fail("expected ConfigError");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join("\n");
    for (
      const key of ["domain", "max_user_send_per_minute", "max_message_size", "log", "listen.smtp"]
    ) {
      assert.match(text, new RegExp(key.replace(".", "\\.")), key);
    }
    assert.equal(err.problems.length, 5);
  }
});

Deno.test("loadConfig() requires a domain and rejects broken TOML", () => {
  assert.throws(() => loadConfig({ fileText: "" }), /domain: required/);
  assert.throws(() => loadConfig({ fileText: "domain = " }), /cannot parse TOML/);
  assert.throws(
    () => loadConfig({ fileText: 'domain = "a.org"\nusername_min_length = 12' }),
    /must not exceed/,
  );
});

Deno.test("loadConfig() warns about unknown keys", () => {
  const { warnings } = loadConfig({
    fileText: 'domain = "a.org"\nfoo = 1\n[listen]\nbar = "1.2.3.4:5"',
  });
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /Unknown key "foo"/);
});

Deno.test("parseSize() understands units", () => {
  assert.equal(parseSize("30M"), 31457280);
  assert.equal(parseSize("1G"), 1073741824);
  assert.equal(parseSize("512 KiB"), 524288);
  assert.equal(parseSize(42), 42);
  assert.equal(parseSize("12 parsecs"), null);
  assert.equal(parseSize(-1), null);
});

Deno.test("parseDuration() reads units and sums segments", () => {
  assert.equal(parseDuration("36h"), 36 * 3600_000);
  assert.equal(parseDuration("90m"), 90 * 60_000);
  assert.equal(parseDuration("2d"), 2 * 86400_000);
  assert.equal(parseDuration(" 1h 30m "), 90 * 60_000);
  assert.equal(parseDuration("1.5h"), 90 * 60_000);
  assert.equal(parseDuration("45s"), 45_000);
  for (const bad of ["", "36", "h", "3x", "1h-2m", "-1h", 36]) {
    assert.equal(parseDuration(bad), null, String(bad));
  }
});

Deno.test("queue_lifetime takes durations; queue_lifetime_hours stays a deprecated alias", () => {
  const at = (fileText: string, env: Record<string, string> = {}) =>
    loadConfig({ fileText: `domain = "a.org"\n${fileText}`, env });
  assert.equal(at("").config.queueLifetimeMs, 120 * 3600_000);
  assert.deepEqual(at("").warnings, []);
  assert.equal(at('queue_lifetime = "90m"').config.queueLifetimeMs, 90 * 60_000);
  assert.equal(at("", { TERN_QUEUE_LIFETIME: "36h" }).config.queueLifetimeMs, 36 * 3600_000);
  const alias = at("queue_lifetime_hours = 3");
  assert.equal(alias.config.queueLifetimeMs, 3 * 3600_000);
  assert.match(
    alias.warnings.join("\n"),
    /queue_lifetime_hours is deprecated: use queue_lifetime = "3h"/,
  );
  const both = at('queue_lifetime = "2h"\nqueue_lifetime_hours = 7');
  assert.equal(both.config.queueLifetimeMs, 2 * 3600_000);
  assert.match(both.warnings.join("\n"), /ignored: queue_lifetime is set/);
  assert.throws(() => at('queue_lifetime = "soon"'), /queue_lifetime .*expected a duration/);
  assert.throws(() => at("queue_lifetime = 36"), /expected a duration/);
  assert.throws(() => at('queue_lifetime = "10s"'), /must be at least 60 s/);
});

Deno.test("outbound_claim_lease is a duration of at least 3 s, five minutes by default", () => {
  const at = (fileText: string) =>
    loadConfig({ fileText: `domain = "a.org"\n${fileText}`, env: {} });
  assert.equal(at("").config.outboundClaimLeaseMs, 5 * 60_000);
  assert.equal(at('outbound_claim_lease = "90s"').config.outboundClaimLeaseMs, 90_000);
  assert.throws(() => at('outbound_claim_lease = "1s"'), /must be at least 3 s/);
});

Deno.test("loadConfig() names the line and column of a TOML syntax error", () => {
  assert.throws(
    () => loadConfig({ fileName: "tern.toml", fileText: 'domain = "a.org"\nlog = "off\n' }),
    /tern\.toml:2:11: cannot parse TOML/,
  );
  assert.throws(
    () => loadConfig({ fileText: 'domain = "a.org"\n\ndomain = "b.org"\n' }),
    /config file:3:1: cannot parse TOML: .*redefine/,
  );
});

Deno.test("loadConfig() refuses ports above 65535 and takes dns_server as ip or ip:port", () => {
  const at = (line: string) => loadConfig({ fileText: `domain = "a.org"\n${line}` }).config;
  assert.throws(() => at("turn_port = 70000"), /turn_port .*at most 65535/);
  assert.equal(at("turn_port = 65535").turnPort, 65535);
  assert.throws(() => at('dns_server = "192.0.2.53:99999"'), /dns_server/);
  // README: `dns_server` is "ip[:port]"; a host name cannot be asked before DNS works.
  assert.equal(at('dns_server = "192.0.2.53"').dnsServer, "192.0.2.53");
  assert.equal(at('dns_server = "192.0.2.53:5353"').dnsServer, "192.0.2.53:5353");
  assert.equal(at('dns_server = "[2001:db8::53]:53"').dnsServer, "[2001:db8::53]:53");
  assert.equal(at('dns_server = "2001:db8::53"').dnsServer, "2001:db8::53");
  assert.throws(() => at('dns_server = "dns.example.net:53"'), /dns_server .*expected/);
});

Deno.test("loadConfig() refuses a listen key that is not a table", () => {
  // `listen = "[::]:25"` instead of a [listen] table: warned as an unknown key "listen" before,
  // and every listener then ran on its default port.
  assert.throws(
    () => loadConfig({ fileText: 'domain = "a.org"\nlisten = "127.0.0.1:25"' }),
    /listen .*expected a \[listen\] table/,
  );
});

Deno.test("loadConfig() refuses an empty data_dir and a hostname that is not a host name", () => {
  const at = (line: string, env: Record<string, string> = {}) =>
    loadConfig({ fileText: `domain = "a.org"\n${line}`, env }).config;
  // Empty: the database, keys and bodies went into the current directory (/ under systemd).
  assert.throws(() => at('data_dir = ""'), /data_dir: required/);
  assert.throws(() => at("", { TERN_DATA_DIR: " " }), /data_dir: required/);
  assert.equal(at('data_dir = "/srv/tern"').dataDir, "/srv/tern");
  assert.throws(() => at('hostname = "bad host!"'), /hostname: not a valid host name/);
  assert.equal(at('hostname = "mx.a.org"').hostname, "mx.a.org");
  assert.equal(at("").hostname, "a.org");
});

Deno.test("loadConfig() refuses non-public outbound destinations unless outbound_allow_private or outbound_allowed_networks say so", () => {
  const strict = loadConfig({ fileText: 'domain = "chat.example.org"' }).config;
  assert.equal(strict.outboundAllowPrivate, false);
  assert.deepEqual(strict.outboundAllowedNetworks, []);
  // Dev mode too: only an explicit setting opens the operator's network to users.
  assert.equal(loadConfig({ dev: true }).config.outboundAllowPrivate, false);
  const open = loadConfig({
    fileText: [
      'domain = "chat.example.org"',
      "outbound_allow_private = true",
      'outbound_allowed_networks = "10.8.0.0/16, fd00::/64"',
    ].join("\n"),
  }).config;
  assert.equal(open.outboundAllowPrivate, true);
  assert.deepEqual(open.outboundAllowedNetworks, ["10.8.0.0/16", "fd00::/64"]);
  assert.throws(
    () =>
      loadConfig({
        fileText:
          'domain = "chat.example.org"\noutbound_allowed_networks = "10.8.0.0/33, 010.0.0.0/8"',
      }),
    (err) =>
      err instanceof ConfigError && err.problems.length === 2 &&
      err.problems.every((p) => p.startsWith("outbound_allowed_networks: expected address ranges")),
  );
});
