// The tern command line as an operator uses it: real processes, a real data directory.

import assert from "node:assert/strict";
import { bytesBody } from "../src/store/message_input.ts";

const dec = new TextDecoder();

async function tern(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function withConfig(fn: (args: string[], dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/tern.toml`,
      `domain = "example.org"\ndata_dir = "${dir}/data"\n`,
    );
    await fn(["--config", `${dir}/tern.toml`], dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tern without a command prints usage and exits 2", async () => {
  const r = await tern([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage:/);
  const bad = await tern(["frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
});

Deno.test("tern version prints version and build", async () => {
  const r = await tern(["version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^tern \d+\.\d+\.\d+ \(commit /);
});

Deno.test("tern accounts manages accounts in the data directory", async () => {
  await withConfig(async (cfg) => {
    const c = await tern(["accounts", "create", "abcdefghi@example.org", "password123", ...cfg]);
    assert.equal(c.code, 0, c.stderr);
    const dup = await tern(["accounts", "create", "abcdefghi@example.org", "password123", ...cfg]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    const weak = await tern(["accounts", "create", "short@example.org", "pw", ...cfg]);
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /username must be 9 characters long/);
    assert.equal((await tern(["accounts", "block", "abcdefghi@example.org", ...cfg])).code, 0);
    const list = await tern(["accounts", "list", ...cfg]);
    assert.match(list.stdout, /abcdefghi@example\.org\tblocked/);
    assert.equal((await tern(["accounts", "delete", "abcdefghi@example.org", ...cfg])).code, 0);
    const missing = await tern(["accounts", "delete", "abcdefghi@example.org", ...cfg]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No account/);
    const usage = await tern(["accounts", "block", ...cfg]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage:/);
  });
});

Deno.test("tern settings validates and stores dynamic settings", async () => {
  await withConfig(async (cfg) => {
    const set = await tern(["settings", "set", "registration", "closed", ...cfg]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await tern(["settings", "get", "registration", ...cfg])).stdout.trim(), "closed");
    const bad = await tern(["settings", "set", "registration", "maybe", ...cfg]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected one of open, closed, token/);
    const unknown = await tern(["settings", "set", "nope", "1", ...cfg]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Unknown setting "nope"/);
  });
});

Deno.test("tern admin-token creates a 0600 token and rotates it", async () => {
  await withConfig(async (cfg, dir) => {
    const a = (await tern(["admin-token", ...cfg])).stdout.trim();
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal((await tern(["admin-token", ...cfg])).stdout.trim(), a);
    assert.equal((await Deno.stat(`${dir}/data/admin_token`)).mode! & 0o777, 0o600);
    const b = (await tern(["admin-token", "--rotate", ...cfg])).stdout.trim();
    assert.notEqual(a, b);
  });
});

Deno.test("tern stops on a bad config with the key and reason", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/t.toml`,
      `domain = "example.org"\nmax_message_size = "lots"\n`,
    );
    const r = await tern(["migrate", "--config", `${dir}/t.toml`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /max_message_size .*expected a size/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tern serve starts, serves /new, answers SIGHUP and stops on SIGTERM", async () => {
  await withConfig(async (_cfg, dir) => {
    await Deno.writeTextFile(
      `${dir}/tern.toml`,
      `domain = "127.0.0.1"\ndata_dir = "${dir}/data"\n[listen]\nsmtp = ""\nsubmission = ""\nsubmissions = ""\nimap = ""\nimaps = ""\nhttp = "127.0.0.1:0"\nhttps = "127.0.0.1:0"\n`,
    );
    const p = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "serve", "--config", `${dir}/tern.toml`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const ready = JSON.parse(text.split("\n")[0].replace(/^tern ready /, ""));
    assert.equal(ready.domain, "[127.0.0.1]");
    // Port 80 only redirects to HTTPS, where /new answers.
    const moved = await fetch(`http://${ready.listen.http}/new`, {
      method: "POST",
      redirect: "manual",
    });
    assert.equal(moved.status, 308);
    assert.equal(moved.headers.get("location"), `https://${ready.listen.https}/new`);
    await moved.body?.cancel();
    const caPem = await Deno.readTextFile(`${dir}/data/tls/selfsigned-ca.pem`);
    using client = Deno.createHttpClient({ caCerts: [caPem] });
    const res = await fetch(`https://${ready.listen.https}/new`, { method: "POST", client });
    const body = await res.json();
    assert.match(body.email, /^[a-z0-9]{9}@\[127\.0\.0\.1\]$/);
    assert.match(body.dclogin_url, /^dclogin:/);
    // SIGHUP: the config file is read again; changes are named, certificates taken up.
    const config = await Deno.readTextFile(`${dir}/tern.toml`);
    await Deno.writeTextFile(`${dir}/tern.toml`, `max_recipients = 50\n${config}`);
    p.kill("SIGHUP");
    const errReader = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "";
    while (!err.includes("certificates reloaded")) {
      const { value, done } = await errReader.read();
      if (done) break;
      err += value;
    }
    assert.match(err, /SIGHUP: config changed \(limits\): restart to apply/);
    assert.match(err, /SIGHUP: certificates reloaded/);
    p.kill("SIGTERM");
    const status = await p.status;
    assert.equal(status.code, 0);
    await reader.cancel();
    await errReader.cancel();
  });
});

Deno.test("tern serve stopped by SIGTERM while it is still starting exits 0 and says so", async () => {
  // A database server that takes the connection and never answers: the start waits on it.
  using db = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await withConfig(async (_cfg, dir) => {
    await Deno.writeTextFile(
      `${dir}/tern.toml`,
      `domain = "127.0.0.1"\ndata_dir = "${dir}/data"\nstore = "postgres"\n` +
        `database_url = "postgres://tern:pw@127.0.0.1:${db.addr.port}/tern"\n` +
        `[listen]\nsmtp = ""\nsubmission = ""\nsubmissions = ""\nimap = ""\nimaps = ""\n` +
        `http = "127.0.0.1:0"\nhttps = ""\n`,
    );
    const p = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "serve", "--config", `${dir}/tern.toml`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(p.stderr).text();
    // The relay is connecting to its database: in the middle of its start.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const conn = await Promise.race([
      db.accept(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no database connection within 60 s")), 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
    p.kill("SIGTERM");
    const status = await p.status;
    conn.close();
    const err = await stderr;
    assert.equal(status.signal, null, `killed by ${status.signal}: ${err}`);
    assert.equal(status.code, 0, err);
    assert.match(err, /SIGTERM received during startup, stopped/);
  });
});

Deno.test("tern queue shows, retries and deletes outbound entries", async () => {
  const { openSqliteStore } = await import("../src/store/sqlite/mod.ts");
  await withConfig(async (cfg, dir) => {
    const empty = await tern(["queue", "list", ...cfg]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /The queue is empty/);
    const store = openSqliteStore(`${dir}/data/tern.db`);
    const id = await store.enqueue({
      sender: "abcdefghi@example.org",
      body: bytesBody(new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n")),
      recipients: ["a@remote.example", "b@remote.example"],
      now: Date.now(),
    });
    const [r] = await store.dueRecipients(Date.now(), 1);
    await store.updateRecipient(r.id, {
      status: "deferred",
      attempts: 1,
      lastError: "Connection to 192.0.2.1:25 timed out",
      nextAttemptAt: Date.now() + 60_000,
      now: Date.now(),
    });
    await store.close();
    const list = await tern(["queue", "list", ...cfg]);
    assert.match(
      list.stdout,
      new RegExp(
        `^${id}\\t.*<abcdefghi@example\\.org>.*(deferred 1, queued 1|queued 1, deferred 1)`,
        "m",
      ),
    );
    const show = await tern(["queue", "show", String(id), ...cfg]);
    assert.match(show.stdout, /<a@remote\.example>\tdeferred\tattempts 1/);
    assert.match(show.stdout, /Connection to 192\.0\.2\.1:25 timed out/);
    assert.equal((await tern(["queue", "retry", String(id), ...cfg])).code, 0);
    assert.equal((await tern(["queue", "delete", String(id), ...cfg])).code, 0);
    const gone = await tern(["queue", "show", String(id), ...cfg]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no entry/);
    const bad = await tern(["queue", "show", "x", ...cfg]);
    assert.equal(bad.code, 2);
  });
});

Deno.test("tern dns prints the records to publish, with the DKIM key", async () => {
  await withConfig(async (cfg) => {
    const r = await tern(["dns", "--ip", "192.0.2.10", ...cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^example\.org\.\s+MX\s+10 example\.org\.$/m);
    assert.match(
      r.stdout,
      /^opendkim\._domainkey\.example\.org\.\s+TXT\s+"v=DKIM1;k=rsa;p=[A-Za-z0-9+/=]+;s=email;t=s"$/m,
    );
    assert.match(r.stdout, /_mta-sts\.example\.org\./);
    // The listeners are dual-stack: a public IPv6 address gets its AAAA record.
    const v6 = await tern(["dns", "--ip", "192.0.2.10", "--ipv6", "2a01:4f8::25", ...cfg]);
    assert.match(v6.stdout, /^example\.org\.\s+AAAA\s+2a01:4f8::25$/m);
    // A typo is not printed as a record to publish.
    for (
      const bad of [["--ip", "192.0.2.300"], ["--ip", "2a01:4f8::25"], ["--ipv6", "192.0.2.10"]]
    ) {
      const wrong = await tern(["dns", ...bad, ...cfg]);
      assert.equal(wrong.code, 2, bad.join(" "));
      assert.equal(wrong.stdout, "");
      assert.match(wrong.stderr, /^tern dns: --ipv?6? expects an IPv[46] address, got /);
    }
    // The key is stable across runs.
    const again = await tern(["dns", ...cfg]);
    assert.equal(
      /p=([^;]+)/.exec(again.stdout)![1],
      /p=([^;]+)/.exec(r.stdout)![1],
    );
  });
});

Deno.test("tern tasks lists and runs maintenance tasks", async () => {
  await withConfig(async (cfg) => {
    const list = await tern(["tasks", "list", ...cfg]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^expire-mail\t/m);
    assert.match(list.stdout, /^quota-trim\t/m);
    const all = await tern(["tasks", "run", "all", ...cfg]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^expire-mail: 0 messages deleted$/m);
    assert.match(all.stdout, /^free-bodies: \d+ bodies freed$/m);
    const bad = await tern(["tasks", "run", "nope", ...cfg]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown task "nope"/);
  });
});

Deno.test("tern install writes config, data directory and a hardened unit; uninstall removes them", async () => {
  const root = await Deno.makeTempDir({ prefix: "tern-install-" });
  try {
    const r = await tern([
      "install",
      "--domain",
      "chat.example.org",
      "--acme-email",
      "ops@example.org",
      "--root",
      root,
      "--no-user",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /opendkim\._domainkey\.chat\.example\.org\./);
    assert.match(r.stdout, /systemctl daemon-reload && systemctl enable --now tern/);
    const unit = await Deno.readTextFile(`${root}/etc/systemd/system/tern.service`);
    assert.match(unit, /^ExecStart=.* serve --config \/etc\/tern\/tern\.toml$/m);
    assert.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(unit, /^ProtectSystem=strict$/m);
    assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m);
    assert.match(
      unit,
      /^Environment=DENO_V8_FLAGS=--max-semi-space-size=\d+,--expose-gc,--no-memory-pool-share-memory-on-teardown$/m,
    );
    assert.match(unit, /^Environment=DENO_NO_UPDATE_CHECK=1$/m);
    // The compiled binary's code cache file ($TMPDIR/deno-compile-tern.cache) outlives a restart:
    // not in PrivateTmp's /tmp, which goes with every stop.
    assert.match(unit, /^PrivateTmp=yes$/m);
    assert.match(unit, /^CacheDirectory=tern$/m);
    assert.match(unit, /^Environment=TMPDIR=\/var\/cache\/tern$/m);
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    const config = await Deno.readTextFile(`${root}/etc/tern/tern.toml`);
    assert.match(config, /^domain = "chat\.example\.org"$/m);
    assert.match(config, /^acme_email = "ops@example\.org"$/m);
    assert.ok((await Deno.stat(`${root}/var/lib/tern/dkim.key`)).isFile);
    const again = await tern([
      "install",
      "--domain",
      "chat.example.org",
      "--root",
      root,
      "--no-user",
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists/);
    const missing = await tern(["install", "--root", root]);
    assert.equal(missing.code, 2);
    const un = await tern(["uninstall", "--root", root]);
    assert.equal(un.code, 0, un.stderr);
    assert.ok(!(await Deno.stat(`${root}/etc/systemd/system/tern.service`).catch(() => null)));
    assert.ok((await Deno.stat(`${root}/var/lib/tern`)).isDirectory, "data kept");
    assert.equal((await tern(["uninstall", "--purge", "--root", root])).code, 0);
    assert.ok(!(await Deno.stat(`${root}/var/lib/tern`).catch(() => null)));
    const ip = await tern(["install", "--ip", "192.0.2.7", "--root", root, "--no-user"]);
    assert.equal(ip.code, 0, ip.stderr);
    assert.match(
      await Deno.readTextFile(`${root}/etc/tern/tern.toml`),
      /^domain = "192\.0\.2\.7"$/m,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("TERN_DEV=1 (deno task tern) runs any command against the dev relay's data", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Without a config or --dev there is no domain.
    const plain = await tern(["admin-token", "--data-dir", `${dir}/data`]);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /domain: required/);
    const dev = await tern(["admin-token", "--data-dir", `${dir}/data`], { TERN_DEV: "1" });
    assert.equal(dev.code, 0, dev.stderr);
    assert.match(dev.stdout, /^[0-9a-f]{64}\n$/);
    // The same token as --dev gives: the same data directory.
    const flag = await tern(["admin-token", "--dev", "--data-dir", `${dir}/data`]);
    assert.equal(flag.stdout, dev.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second tern serve on the same SQLite data directory refuses to start", async () => {
  await withConfig(async (_cfg, dir) => {
    // Listeners on port 0: the second relay could bind its own ports, so only the data directory
    // is shared (an operator starting tern by hand beside the systemd unit, or a new binary
    // started before the old one was stopped, which would migrate the database under it).
    await Deno.writeTextFile(
      `${dir}/tern.toml`,
      `domain = "127.0.0.1"\ndata_dir = "${dir}/data"\nturn_port = 0\n[listen]\nsmtp = ""\nsubmission = ""\nsubmissions = ""\nimap = ""\nimaps = ""\nhttp = ""\nhttps = "127.0.0.1:0"\n`,
    );
    const first = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "serve", "--config", `${dir}/tern.toml`],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = first.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    try {
      assert.match(text, /^tern ready /);
      const second = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.ts", "serve", "--config", `${dir}/tern.toml`],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const err = dec.decode(second.stderr);
      assert.equal(second.code, 1, err);
      assert.doesNotMatch(dec.decode(second.stdout), /tern ready/);
      assert.match(err, /another tern is running on data_dir .*\/data/);
      assert.equal(err.trim().split("\n").length, 1, err);
      // Nor do the commands that need the relay stopped.
      for (
        const args of [["migrate"], ["migrate-store", "--to", "postgres://u:p@127.0.0.1:1/db"]]
      ) {
        const r = await tern([...args, "--config", `${dir}/tern.toml`]);
        assert.equal(r.code, 1, args[0]);
        assert.match(r.stderr, /another tern is running on data_dir/, args[0]);
      }
    } finally {
      first.kill("SIGTERM");
      assert.equal((await first.status).code, 0);
      await reader.cancel();
    }
    // Once the first has stopped, the directory is free again.
    const again = await tern(["migrate", "--config", `${dir}/tern.toml`]);
    assert.equal(again.code, 0, again.stderr);
  });
});

Deno.test("a config file that is not UTF-8 stops tern instead of being read with replacement characters", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Latin-1 "café": read as UTF-8 it silently became "caf\uFFFD" on the privacy page.
    await Deno.writeFile(
      `${dir}/t.toml`,
      new Uint8Array([
        ...new TextEncoder().encode(`domain = "example.org"\ndata_dir = "${dir}/data"\n`),
        ...new TextEncoder().encode('admin_contact = "caf'),
        0xe9,
        ...new TextEncoder().encode('"\n'),
      ]),
    );
    const r = await tern(["migrate", "--config", `${dir}/t.toml`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /t\.toml.*:3: not UTF-8 text/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
