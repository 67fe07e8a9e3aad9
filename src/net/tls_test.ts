import assert from "node:assert/strict";
import { generateSelfSigned, loadTlsMaterial } from "./tls.ts";

Deno.test("loadTlsMaterial() refuses configured files that are not a matching PEM pair", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-tls-" });
  try {
    const a = await generateSelfSigned(["a.example"]);
    const b = await generateSelfSigned(["b.example"]);
    await Deno.writeTextFile(`${dir}/a.crt`, a.certPem);
    await Deno.writeTextFile(`${dir}/a.key`, a.keyPem);
    await Deno.writeTextFile(`${dir}/b.key`, b.keyPem);
    await Deno.writeTextFile(`${dir}/tern.toml`, 'domain = "a.example"\n');
    const load = (certFile: string, keyFile: string) =>
      loadTlsMaterial({ certFile, keyFile, dir: `${dir}/tls`, names: ["a.example"] });

    const ok = await load(`${dir}/a.crt`, `${dir}/a.key`);
    assert.equal(ok.certPem, a.certPem);
    // Before, each of these was taken: the relay said "ready" and then failed every handshake.
    await assert.rejects(load(`${dir}/a.crt`, `${dir}/b.key`), /tls_key .*b\.key.* does not match/);
    await assert.rejects(load(`${dir}/tern.toml`, `${dir}/a.key`), /tls_cert .*tern\.toml.*PEM/);
    await assert.rejects(load(`${dir}/a.crt`, `${dir}/tern.toml`), /tls_key .*tern\.toml.*PEM/);
    await assert.rejects(load(`${dir}/a.crt`, `${dir}/missing.key`), /tls_key .*missing\.key/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
