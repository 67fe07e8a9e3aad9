// The tern command line as an operator uses it: real processes, a real data directory.

import assert from "node:assert/strict";

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

Deno.test("tern serve starts, serves /new and stops on SIGTERM", async () => {
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
    const res = await fetch(`http://${ready.listen.http}/new`, { method: "POST" });
    const body = await res.json();
    assert.match(body.email, /^[a-z0-9]{9}@\[127\.0\.0\.1\]$/);
    assert.match(body.dclogin_url, /^dclogin:/);
    p.kill("SIGTERM");
    const status = await p.status;
    assert.equal(status.code, 0);
    reader.releaseLock();
    await p.stdout.cancel().catch(() => {});
    await p.stderr.cancel();
  });
});
