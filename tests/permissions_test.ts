// File permissions as an operator finds them: `tern backup` writes a file only its owner can read,
// and a start tightens a data directory that a copy, a restore or an older release left open.
// Processes run under umask 022 (the usual default), where a plainly created file is 0644.

import assert from "node:assert/strict";
import { startTern } from "./support/tern_process.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

/** `tern ARGS` under umask 022. */
async function ternUmask022(args: string[]) {
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", 'umask 022 && exec "$0" "$@"', Deno.execPath(), "run", "-A", "main.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("tern backup writes the snapshot with mode 0600", async () => {
  const relay = await startTern("", { log: "off" });
  const work = await Deno.makeTempDir({ prefix: "tern-perm-" });
  try {
    const config = `${relay.dir}/tern.toml`;
    const r = await ternUmask022(["backup", `${work}/snapshot.db`, "--config", config]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await mode(`${work}/snapshot.db`)).toString(8), "600");
    assert.ok((await Deno.stat(`${work}/snapshot.db`)).size > 0);
  } finally {
    await relay.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a start tightens the data directory to 0700 and the database, keys and secrets to 0600", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-perm-" });
  try {
    // A first run creates everything, and has nothing to report: what it created is not "too
    // open" for it to have found. Then the files are opened up as a careless copy would.
    const first = await startTern("", { dir, log: "off" });
    await first.stop();
    assert.doesNotMatch(first.stderr(), /permissions tightened/);
    const data = `${dir}/data`;
    const files = [
      "tern.db",
      "admin_token",
      "tls/selfsigned-key.pem",
      "tls/selfsigned-cert.pem",
    ];
    for (const sub of [data, `${data}/tls`]) {
      for await (const e of Deno.readDir(sub)) {
        if (e.isFile) await Deno.chmod(`${sub}/${e.name}`, 0o644);
      }
    }
    await Deno.chmod(`${data}/tls`, 0o755);
    await Deno.chmod(data, 0o755);
    const relay = await startTern("", { dir, log: "off" });
    try {
      assert.equal((await mode(data)).toString(8), "700");
      assert.equal((await mode(`${data}/tls`)).toString(8), "700");
      for (const f of files) assert.equal((await mode(`${data}/${f}`)).toString(8), "600", f);
      for (const sub of [data, `${data}/tls`]) {
        for await (const e of Deno.readDir(sub)) {
          if (e.isFile) assert.equal((await mode(`${sub}/${e.name}`)).toString(8), "600", e.name);
        }
      }
      // No-Log mode still says what it changed (paths only, no user data).
      assert.match(relay.stderr(), /data_dir permissions tightened: .*tern\.db 644 -> 600/);
    } finally {
      await relay.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
