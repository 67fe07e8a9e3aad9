// Certificate reload (SIGHUP, ACME renewal): new handshakes on SMTPS, IMAPS and HTTPS present
// the new certificate at once, without restarting listeners.

import assert from "node:assert/strict";
import * as tls from "node:tls";
import { withRelay } from "./support/relay.ts";
import { generateSelfSigned } from "../src/net/mod.ts";

function fingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca: [ca], servername: "localhost" }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
  });
}

Deno.test("reloadTls swaps the certificate on SMTPS, IMAPS and HTTPS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-certs-" });
  try {
    const first = await generateSelfSigned(["localhost", "127.0.0.1"]);
    await Deno.writeTextFile(`${dir}/cert.pem`, first.certPem);
    await Deno.writeTextFile(`${dir}/key.pem`, first.keyPem);
    await withRelay(async (t) => {
      const ports = [
        t.addr("submissions").port,
        t.addr("imaps").port,
        Number(t.relay.addresses.https!.split(":").pop()),
      ];
      const before = await Promise.all(ports.map((p) => fingerprint(p, first.caPem!)));
      assert.equal(new Set(before).size, 1);
      const second = await generateSelfSigned(["localhost", "127.0.0.1"]);
      await Deno.writeTextFile(`${dir}/cert.pem`, second.certPem);
      await Deno.writeTextFile(`${dir}/key.pem`, second.keyPem);
      await t.relay.reloadTls();
      const after = await Promise.all(ports.map((p) => fingerprint(p, second.caPem!)));
      assert.equal(new Set(after).size, 1);
      assert.notEqual(after[0], before[0]);
      // The HTTPS listener still serves requests on the same port.
      const client = Deno.createHttpClient({ caCerts: [second.caPem!] });
      try {
        const r = await fetch(`https://localhost:${ports[2]}/`, { client });
        assert.equal(r.status, 200);
        await r.body?.cancel();
      } finally {
        client.close();
      }
    }, {
      overrides: {
        tls_cert: `${dir}/cert.pem`,
        tls_key: `${dir}/key.pem`,
        "listen.https": "127.0.0.1:0",
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
