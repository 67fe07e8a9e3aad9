// The one-file artefact CI can build here (`deno bundle`; `deno compile` needs Deno's download
// host): dist/tern.js must run from an empty directory with `deno run --no-config`, apply its
// embedded migrations, and serve the embedded landing page and web admin, and speak SMTP/IMAP.
// Its store threads start from the bundle itself: a login that creates an account (a write, so
// the writer thread) must succeed.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { Buffer } from "node:buffer";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

Deno.test({
  name: "the bundled relay runs alone from an empty directory",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const build = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/compile.ts", "--bundle-only"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(build.code, 0, dec.decode(build.stderr));
    // Reproducible: a second build of the same tree is byte-identical.
    const first = await Deno.readFile(`${ROOT}dist/tern.js`);
    const again = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/compile.ts", "--bundle-only"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(again.code, 0, dec.decode(again.stderr));
    const second = await Deno.readFile(`${ROOT}dist/tern.js`);
    const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    assert.equal(digest(first), digest(second), "two builds differ");
    // Minified: V8 keeps the whole script's source for as long as the relay runs, and what it
    // compiles from it grows with it (scripts/compile.ts: 4-5 MB of idle RSS). Laid out as
    // written, the bundle has a line per statement, some 35 bytes each; minified, lines end only
    // where a template literal holds a line break.
    const text = dec.decode(first);
    const lines = text.split("\n").length;
    assert.ok(text.length / lines > 200, `${lines} lines in ${text.length} bytes: not minified`);
    const dir = await Deno.makeTempDir({ prefix: "tern-bundle-" });
    try {
      await Deno.copyFile(`${ROOT}dist/tern.js`, `${dir}/tern.js`);
      await Deno.writeTextFile(
        `${dir}/tern.toml`,
        [
          'domain = "127.0.0.1"',
          `data_dir = "${dir}/data"`,
          "[listen]",
          ...["smtp", "submission", "submissions", "imap", "imaps", "http", "https"].map((l) =>
            `${l} = "127.0.0.1:0"`
          ),
        ].join("\n"),
      );
      // Each command's module loads when it runs (src/cli/main.ts): they are all in the file.
      const help = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", "tern.js", "help"],
        cwd: dir,
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(help.code, 0, dec.decode(help.stderr));
      for (const c of ["serve", "doctor", "install", "restore", "migrate-store"]) {
        assert.match(dec.decode(help.stdout), new RegExp(`^  tern ${c}\\b`, "m"));
      }
      // Bad input gets the same clear message and exit code from the minified file as from the
      // sources.
      await Deno.writeTextFile(`${dir}/bad.toml`, "domain = 5\n");
      for (const args of [["serve", "--config", "bad.toml"], ["serve", "--bogus"]]) {
        const run = (entry: string[], cwd: string) =>
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-A",
              ...entry,
              ...args.map((a) => a.replace("bad.toml", `${dir}/bad.toml`)),
            ],
            cwd,
            env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
            stdout: "piped",
            stderr: "piped",
          }).output();
        const [fromBundle, fromSources] = await Promise.all([
          run(["--no-config", "tern.js"], dir),
          run(["main.ts"], ROOT),
        ]);
        assert.notEqual(fromBundle.code, 0);
        assert.equal(fromBundle.code, fromSources.code);
        assert.match(dec.decode(fromBundle.stderr), /^tern( serve)?: \S/);
        assert.equal(dec.decode(fromBundle.stderr), dec.decode(fromSources.stderr));
      }
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--no-config",
          "tern.js",
          "serve",
          "--config",
          "tern.toml",
          "--no-banner",
        ],
        cwd: dir,
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.getReader();
      let out = "";
      let ready: { listen: Record<string, string> } | null = null;
      const deadline = Date.now() + 60_000;
      try {
        while (!ready && Date.now() < deadline) {
          const { done, value } = await reader.read();
          if (done) break;
          out += dec.decode(value);
          const m = /^tern ready (\{.*\})$/m.exec(out);
          if (m) ready = JSON.parse(m[1]);
        }
        assert.ok(ready, `no ready line: ${out}`);
        // Port 80 only redirects; pages are served over HTTPS (the generated CA).
        const redirect = await fetch(`http://${ready.listen.http}/`, { redirect: "manual" });
        assert.equal(redirect.status, 301);
        await redirect.body?.cancel();
        const caPem = await Deno.readTextFile(`${dir}/data/tls/selfsigned-ca.pem`);
        using client = Deno.createHttpClient({ caCerts: [caPem] });
        const https = `https://${ready.listen.https}`;
        const landing = await fetch(`${https}/`, { client });
        assert.equal(landing.status, 200);
        assert.match(await landing.text(), /<svg/);
        const admin = await fetch(`${https}/admin`, { client });
        assert.equal(admin.status, 200);
        assert.match(await admin.text(), /<script/);
        const conn = await Deno.connect({
          hostname: "127.0.0.1",
          port: Number(ready.listen.smtp.split(":").pop()),
        });
        const buf = new Uint8Array(256);
        const n = await conn.read(buf);
        conn.close();
        assert.match(dec.decode(buf.subarray(0, n ?? 0)), /^220 /);
        // A first login from /new's credentials creates the account: the password hash runs on
        // the worker pool, whose workers must start from this one file too.
        const creds = await (await fetch(`${https}/new`, { method: "POST", client })).json();
        const imap = await Deno.connectTls({
          hostname: "127.0.0.1",
          port: Number(ready.listen.imaps.split(":").pop()),
          caCerts: [caPem],
        });
        try {
          await imap.write(
            new TextEncoder().encode(`a LOGIN "${creds.email}" "${creds.password}"\r\n`),
          );
          let answer = "";
          while (!/^a /m.test(answer)) {
            const got = await imap.read(buf);
            if (got === null) break;
            answer += dec.decode(buf.subarray(0, got));
          }
          assert.match(answer, /^a OK /m, answer);
        } finally {
          imap.close();
        }
        assert.ok((await Deno.stat(`${dir}/data/tern.db`)).isFile, "database created");
        // The account that login created was committed by the writer thread (a worker started
        // from this one file too).
        const db = new DatabaseSync(`${dir}/data/tern.db`, { readOnly: true });
        try {
          const row = db.prepare("SELECT address FROM accounts WHERE address = ?").get(
            creds.email,
          ) as { address: string } | undefined;
          assert.equal(row?.address, creds.email);
        } finally {
          db.close();
        }
        const nm = await Deno.stat(`${dir}/node_modules`).catch(() => null);
        assert.equal(nm, null, "nothing beside the file");
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await reader.cancel();
        await child.stderr.cancel();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// What `deno compile` gets: scripts/compile.ts compiles the bundle above, not the sources, so the
// binary runs the file this test runs. Deno's runtime base (denort) cannot be downloaded here;
// DENORT_BIN set to the deno binary itself lets the compile step run to its end (it then writes a
// copy of deno with the file embedded, which is not a working binary), and what it embedded can be
// read from the file it wrote.
Deno.test({
  name: "the release binary embeds the bundle",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/compile.ts"],
      cwd: ROOT,
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENORT_BIN: Deno.execPath() },
      stdout: "piped",
      stderr: "piped",
    }).output();
    try {
      assert.equal(out.code, 0, dec.decode(out.stderr));
      const binary = Buffer.from(await Deno.readFile(`${ROOT}dist/tern`));
      const bundle = await Deno.readFile(`${ROOT}dist/tern.js`);
      assert.ok(binary.indexOf(bundle) >= 0, "dist/tern.js is not in the binary as built");
      // Not the sources: main.ts's opening comment would be there.
      const mainTs = await Deno.readTextFile(`${ROOT}main.ts`);
      assert.equal(binary.indexOf(mainTs.split("\n")[0]), -1, "the binary holds main.ts");
    } finally {
      await Deno.remove(`${ROOT}dist/tern`).catch(() => {});
    }
  },
});
