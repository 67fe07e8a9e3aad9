import assert from "node:assert/strict";
import * as tls from "node:tls";
import { trustedCas } from "./trust.ts";
import { httpAnswer, httpsPeer, smtpPeer, testCertificate } from "./testdata/fake_peers.ts";

const PROBE = new URL("./testdata/trust_probe.ts", import.meta.url).pathname;

Deno.test("trustedCas() leaves Deno's store alone unless CAs are configured", () => {
  assert.equal(trustedCas([], "/nonexistent"), undefined);
});

Deno.test("trustedCas() adds configured CAs to the roots and the DENO_CERT file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/extra.pem`, "EXTRA-PEM");
    const cas = trustedCas(["CONFIGURED"], `${dir}/extra.pem`)!;
    assert.equal(cas.length, tls.rootCertificates.length + 2);
    assert.deepEqual(cas.slice(-2), ["EXTRA-PEM", "CONFIGURED"]);
    assert.equal(trustedCas(["C"], undefined)!.length, tls.rootCertificates.length + 1);
    assert.throws(() => trustedCas(["C"], `${dir}/missing.pem`), /Cannot read DENO_CERT/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SMTP and /mxdeliv trust the same certificates: DENO_CERT, configured CAs, or neither", async () => {
  const cert = await testCertificate();
  const other = await testCertificate();
  const smtp = await smtpPeer({ tls: cert });
  const https = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, cert.caPem!);
    await Deno.writeTextFile(`${dir}/other.pem`, other.caPem!);
    const inherited = Deno.env.toObject();
    delete inherited.DENO_CERT;
    const probe = async (env: Record<string, string>, configured?: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          PROBE,
          String(smtp.port),
          String(https.port),
          ...(configured ? [configured] : []),
        ],
        env: { ...inherited, NO_COLOR: "1", ...env },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      return new TextDecoder().decode(out.stdout).trim().split("\n");
    };
    const [smtpNone, httpsNone] = await probe({});
    assert.match(smtpNone, /^smtp failed: TLS with .* failed/);
    assert.match(httpsNone, /^https failed: TLS with .* failed/);
    assert.deepEqual(await probe({ DENO_CERT: `${dir}/ca.pem` }), ["smtp ok", "https ok 200"]);
    assert.deepEqual(await probe({}, `${dir}/ca.pem`), ["smtp ok", "https ok 200"]);
    // A configured CA does not drop the one DENO_CERT names.
    assert.deepEqual(
      await probe({ DENO_CERT: `${dir}/ca.pem` }, `${dir}/other.pem`),
      ["smtp ok", "https ok 200"],
    );
  } finally {
    await smtp.close();
    await https.close();
    await Deno.remove(dir, { recursive: true });
  }
});
