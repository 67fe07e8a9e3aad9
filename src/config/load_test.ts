import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseSize } from "./load.ts";

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
  });
  assert.equal(config.shutdownGraceMs, 10_000);
  assert.equal(config.irohRelay, null, "unset: the embedded relay");
  assert.ok(Object.isFrozen(config.limits));
});

Deno.test("loadConfig() takes iroh_relay as an external URL or empty, and refuses other text", () => {
  const load = (v: string) => loadConfig({ fileText: `domain = "a.org"\niroh_relay = ${v}` });
  assert.equal(load('"https://relay.example.net"').config.irohRelay, "https://relay.example.net");
  assert.equal(load('""').config.irohRelay, "");
  assert.throws(() => load('"relay.example.net"'), ConfigError);
  assert.throws(() => load('"ftp://relay.example.net"'), ConfigError);
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
