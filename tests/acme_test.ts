// ACME HTTP-01 against a real ACME server (Debian's pebble, names resolved by a local dnsmasq):
// issuance for the domain and its mta-sts. and www. names, a certificate chaining to pebble's
// root, renewal decided by the clock, fallback when a name cannot be validated, and failure
// handling that keeps the certificate in use.

import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { X509Certificate } from "node:crypto";
import { Hono } from "hono";
import { acmeDomains, AcmeManager } from "../src/acme/mod.ts";
import type { AcmeOptions } from "../src/acme/mod.ts";
import { pebbleNeed, startPebble } from "./support/pebble.ts";
import { freePort, retryOnAddrInUse } from "./support/ports.ts";
import { withRelay } from "./support/relay.ts";
import { createLogger } from "../src/log/mod.ts";

const DAY = 86_400_000;

function splitChain(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [])
    .map((p) => new X509Certificate(p));
}

function sans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "").split(/,\s*/).map((s) => s.replace(/^DNS:/, "")).sort();
}

/** The leaf certificate a TLS server presents. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
  });
}

/** A TLS handshake with the issued pair, trusting only pebble's root. */
async function handshake(certPem: string, keyPem: string, rootPem: string, servername: string) {
  const server = tls.createServer({ cert: certPem, key: keyPem }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<boolean>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername, ca: [rootPem] }, () => {
        const ok = s.authorized;
        s.destroy();
        resolve(ok);
      });
      s.on("error", reject);
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

Deno.test("acmeDomains: domain, mta-sts. and www.; nothing for an IP relay", () => {
  assert.deepEqual(acmeDomains("Tern.Test"), ["tern.test", "mta-sts.tern.test", "www.tern.test"]);
  assert.deepEqual(acmeDomains("tern.test", "mx.tern.test"), [
    "tern.test",
    "mta-sts.tern.test",
    "www.tern.test",
    "mx.tern.test",
  ]);
  assert.deepEqual(acmeDomains("192.0.2.1"), []);
  assert.deepEqual(acmeDomains("[192.0.2.1]"), []);
  assert.throws(() => new AcmeManager({ directoryUrl: "x", domains: ["192.0.2.1"], dir: "/x" }));
});

Deno.test(
  pebbleNeed.title("AcmeManager issues, renews and keeps certificates with pebble"),
  { ignore: pebbleNeed.ignore },
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "tern-acme-" });
    const managers: AcmeManager[] = [];
    let clock = Date.now();
    const logged: string[] = [];
    const log = createLogger("off", { write: (line) => logged.push(line) });
    const make = (over: Partial<AcmeOptions> = {}) => {
      const m = new AcmeManager({
        directoryUrl: pebble.directoryUrl,
        email: "admin@tern.test",
        domains: acmeDomains("tern.test"),
        dir: `${dir}/acme`,
        now: () => clock,
        caCerts: [pebble.apiCaPem],
        requestRetries: 0,
        pollMs: 100,
        log,
        ...over,
      });
      managers.push(m);
      return m;
    };
    // The route the relay's HTTP app serves; any manager in progress may answer.
    const app = new Hono();
    app.get("/.well-known/acme-challenge/:token", (c) => {
      for (const m of managers) {
        const answer = m.challengeResponse(c.req.param("token"));
        if (answer !== null) return c.text(answer);
      }
      return c.notFound();
    });
    // The challenge server binds any free port; pebble validates against that port.
    const challengeServer = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    const pebble = await startPebble({ httpPort: challengeServer.addr.port, zones: ["tern.test"] })
      .catch(async (err) => {
        await challengeServer.shutdown();
        throw err;
      });
    try {
      const manager = make();
      let firstSerial = "";

      await t.step(
        "issues a certificate for the three names, chaining to pebble's root",
        async () => {
          assert.equal(manager.certificateFiles(), null);
          const result = await manager.ensureCertificate();
          assert.equal(result, "issued", `${manager.state().lastError}\n${pebble.output()}`);
          const files = manager.certificateFiles();
          assert.ok(files);
          for (const p of [files.certPath, files.keyPath, `${dir}/acme/account-key.pem`]) {
            assert.equal((await Deno.stat(p)).mode! & 0o777, 0o600, p);
          }
          const certPem = await Deno.readTextFile(files.certPath);
          const keyPem = await Deno.readTextFile(files.keyPath);
          const chain = splitChain(certPem);
          assert.ok(chain.length >= 2, "leaf and intermediate");
          assert.deepEqual(sans(chain[0]), ["mta-sts.tern.test", "tern.test", "www.tern.test"]);
          const root = new X509Certificate(await pebble.root());
          for (let i = 0; i < chain.length; i++) {
            const issuer = chain[i + 1] ?? root;
            assert.ok(chain[i].checkIssued(issuer), `certificate ${i} issued by the next`);
            assert.ok(chain[i].verify(issuer.publicKey), `certificate ${i} signature`);
          }
          assert.ok(await handshake(certPem, keyPem, root.toString(), "mta-sts.tern.test"));
          firstSerial = chain[0].serialNumber;
          assert.equal(manager.state().certificate?.serial, firstSerial);
        },
      );

      await t.step("reports valid far from expiry, also after a restart", async () => {
        assert.equal(await manager.ensureCertificate(), "valid");
        const again = make();
        assert.equal(await again.ensureCertificate(), "valid");
        assert.equal(again.state().certificate?.serial, firstSerial);
      });

      await t.step(
        "renews within 30 days of expiry and hot-swaps it into a running relay",
        async () => {
          const validTo = manager.state().certificate!.validTo.getTime();
          clock = validTo - 31 * DAY;
          assert.equal(await manager.ensureCertificate(), "valid");
          const files = manager.certificateFiles()!;
          const leafOnDisk = async () =>
            splitChain(await Deno.readTextFile(files.certPath))[0].fingerprint256;
          await withRelay(async (r) => {
            const port = r.addr("submissions").port;
            assert.equal(await presented(port), await leafOnDisk());
            clock = validTo - 29 * DAY;
            const renewed = Promise.withResolvers<void>();
            let calls = 0;
            manager.start(3_600_000, async () => {
              calls++;
              await r.relay.reloadTls();
              renewed.resolve();
            });
            await renewed.promise;
            await manager.stop();
            assert.equal(calls, 1);
            assert.equal(manager.state().lastResult, "renewed");
            assert.notEqual(manager.state().certificate!.serial, firstSerial);
            assert.equal(await presented(port), await leafOnDisk());
          }, { overrides: { tls_cert: files.certPath, tls_key: files.keyPath } });
          clock = Date.now();
          assert.equal(await manager.ensureCertificate(), "valid");
        },
      );

      await t.step("leaves out a name that cannot be validated", async () => {
        clock = Date.now();
        const partial = make({
          dir: `${dir}/partial`,
          domains: ["tern.test", "mta-sts.tern.test", "nodns.example"],
        });
        assert.equal(await partial.ensureCertificate(), "issued");
        assert.match(partial.state().lastError ?? "", /nodns\.example/);
        const files = partial.certificateFiles()!;
        const leaf = splitChain(await Deno.readTextFile(files.certPath))[0];
        assert.deepEqual(sans(leaf), ["mta-sts.tern.test", "tern.test"]);
        // Already covered and not due: the failing name alone triggers no new certificate.
        assert.equal(await partial.ensureCertificate(), "valid");
        assert.equal(partial.state().certificate?.serial, leaf.serialNumber);
        // Without the primary name nothing is issued.
        const none = make({ dir: `${dir}/none`, domains: ["nodns.example", "tern.test"] });
        assert.equal(await none.ensureCertificate(), "failed");
        assert.equal(none.certificateFiles(), null);
      });

      await t.step("keeps the certificate when the ACME server is unreachable", async () => {
        const before = await Deno.readTextFile(`${dir}/acme/cert.pem`);
        await pebble.stopPebble();
        const validTo = manager.state().certificate!.validTo.getTime();
        clock = validTo - 10 * DAY;
        assert.equal(await manager.ensureCertificate(), "failed");
        assert.match(manager.state().lastError ?? "", /unreachable/);
        assert.match(logged.at(-1)!, /request failed \(keeping the current certificate\)/);
        assert.ok(manager.certificateFiles());
        assert.equal(await Deno.readTextFile(`${dir}/acme/cert.pem`), before);
        // The loop retries with backoff, not at the full interval.
        let reloads = 0;
        manager.start(3_600_000, () => Promise.resolve(void reloads++));
        while (manager.state().nextCheckAt === null) await new Promise((r) => setTimeout(r, 20));
        const delay = manager.state().nextCheckAt! - Date.now();
        await manager.stop();
        assert.equal(reloads, 0);
        assert.ok(delay <= 10 * 60_000 + 1000, `retry in ${delay} ms`);
        assert.equal(manager.state().failures, 2);
      });
    } finally {
      for (const m of managers) await m.stop();
      await challengeServer.shutdown();
      await pebble.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("AcmeManager.stop() cuts a hanging attempt short", async () => {
  // An ACME server that accepts connections and never answers.
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const dir = await Deno.makeTempDir({ prefix: "tern-acme-" });
  try {
    const manager = new AcmeManager({
      directoryUrl: `https://127.0.0.1:${port}/dir`,
      domains: acmeDomains("tern.test"),
      dir,
      // Without stop() the attempt would wait an hour for the silent server: an attempt that
      // ends at all was cut short by stop().
      requestTimeoutMs: 3_600_000,
      requestRetries: 0,
    });
    const attempt = manager.ensureCertificate();
    while (sockets.size === 0) await new Promise((r) => setTimeout(r, 10));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("stop() did not end the attempt")), 60_000);
    });
    try {
      await Promise.race([manager.stop(), hung]);
      assert.equal(await Promise.race([attempt, hung]), "failed");
    } finally {
      clearTimeout(timer);
    }
    assert.equal(manager.certificateFiles(), null);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await Deno.remove(dir, { recursive: true });
  }
});

/** The names of the certificate a listener serves, verified against `root`. */
function servedNames(port: number, root: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "tern.test", ca: [root] }, () => {
      const names = sans(new X509Certificate(s.getPeerCertificate().raw));
      s.destroy();
      resolve(names);
    });
    s.on("error", reject);
  });
}

Deno.test(
  pebbleNeed.title(
    "a relay with acme_email gets its certificate from pebble and serves it everywhere",
  ),
  { ignore: pebbleNeed.ignore },
  // pebble validates on the relay's HTTP port, which must be known before the relay starts: a
  // port found free, with another try when it was taken in between.
  () =>
    retryOnAddrInUse(async () => {
      const httpPort = await freePort();
      const pebble = await startPebble({ httpPort, zones: ["tern.test"] });
      try {
        const root = await pebble.root();
        await withRelay(async (t) => {
          const acme = t.relay.acme!;
          assert.ok(acme, "ACME is on for a named domain with acme_email");
          const deadline = Date.now() + 30_000;
          while (!acme.certificateFiles() && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.ok(acme.certificateFiles(), `no certificate: ${JSON.stringify(acme.state())}`);
          // reloadTls runs right after issuance: wait until each listener serves the new pair.
          for (const port of [t.addr("submissions").port, t.addr("imaps").port]) {
            const until = Date.now() + 30_000;
            let names: string[] | string = [];
            while (Date.now() < until) {
              names = await servedNames(port, root).catch((e) => String(e));
              if (Array.isArray(names) && names.length === 3) break;
              await new Promise((r) => setTimeout(r, 50));
            }
            assert.deepEqual(names, ["mta-sts.tern.test", "tern.test", "www.tern.test"]);
          }
        }, {
          overrides: {
            domain: "tern.test",
            acme_email: "ops@tern.test",
            acme_directory: pebble.directoryUrl,
            "listen.http": `127.0.0.1:${httpPort}`,
          },
          relay: { acmeCaCerts: [pebble.apiCaPem] },
        });
      } finally {
        await pebble.stop();
      }
    }),
);
