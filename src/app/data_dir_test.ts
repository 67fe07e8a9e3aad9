import assert from "node:assert/strict";
import { ensureDataDir, lockDataDir, tightenDataDir } from "./data_dir.ts";

const mode = (p: string) => (Deno.lstatSync(p).mode! & 0o777).toString(8);

Deno.test("tightenDataDir(): 0700 directories, 0600 files; bodies not walked; links left alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-dd-" });
  const outside = await Deno.makeTempFile({ prefix: "tern-dd-outside-" });
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.writeTextFile(`${dir}/tern.db`, "x", { mode: 0o644 });
    await Deno.mkdir(`${dir}/tls`, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/tls/key.pem`, "k", { mode: 0o644 });
    await Deno.mkdir(`${dir}/bodies/ab`, { recursive: true, mode: 0o755 });
    await Deno.writeTextFile(`${dir}/bodies/ab/1`, "b", { mode: 0o644 });
    await Deno.chmod(outside, 0o644);
    await Deno.symlink(outside, `${dir}/link`);
    const r = tightenDataDir(dir);
    assert.deepEqual(r.failed, []);
    assert.equal(mode(dir), "700");
    assert.equal(mode(`${dir}/tern.db`), "600");
    assert.equal(mode(`${dir}/tls`), "700");
    assert.equal(mode(`${dir}/tls/key.pem`), "600");
    assert.equal(mode(`${dir}/bodies`), "700");
    assert.equal(mode(`${dir}/bodies/ab`), "755", "not walked: the parent is closed anyway");
    assert.equal(mode(outside), "644", "a link's target is not ours to change");
    assert.equal(r.changed.length, 5);
    assert.deepEqual(tightenDataDir(dir), { changed: [], failed: [] });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});

Deno.test("ensureDataDir() names data_dir when it is a file, and lockDataDir() refuses a second holder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-dd-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    assert.throws(() => ensureDataDir(`${dir}/file`), /data_dir .*\/file is not a directory/);
    const lock = lockDataDir(`${dir}/data`);
    try {
      // A lock file opened again is a second holder, as another process would be.
      assert.throws(() => lockDataDir(`${dir}/data`), /another tern is running on data_dir/);
    } finally {
      lock.close();
    }
    lockDataDir(`${dir}/data`).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tightenDataDir() reports only what was too open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-dd-" });
  try {
    await Deno.chmod(dir, 0o700);
    await Deno.writeTextFile(`${dir}/admin_token`, "x", { mode: 0o400 });
    await Deno.chmod(`${dir}/admin_token`, 0o400);
    const r = tightenDataDir(dir);
    assert.equal(mode(`${dir}/admin_token`), "600");
    assert.deepEqual(r, { changed: [], failed: [] }, "0400 -> 0600 opened nothing to others");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
