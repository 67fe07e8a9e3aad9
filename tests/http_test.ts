// The HTTP edge of a running relay as clients and attackers see it: port 80 only redirects to
// HTTPS (ACME challenges excepted), so /new, /mxdeliv and the admin API never answer in clear;
// half-sent requests are dropped at the head deadline; connections per address are capped; the
// admin token is throttled like a password.

import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { withRelay } from "./support/relay.ts";
import type { TestRelay } from "./support/relay.ts";

const HTTPS = { "listen.https": "127.0.0.1:0" };

function port(t: TestRelay, name: "http" | "https"): number {
  const a = t.relay.addresses[name]!;
  return Number(a.slice(a.lastIndexOf(":") + 1));
}

/** Everything the server sends on one connection until it closes. */
function exchange(
  options: {
    port: number;
    send?: string;
    localAddress?: string;
    tls?: { caPem: string };
  },
): { socket: net.Socket; received: Promise<string>; connected: Promise<void> } {
  const raw = net.connect({
    host: "127.0.0.1",
    port: options.port,
    localAddress: options.localAddress ?? "127.0.0.1",
  });
  const socket = options.tls
    ? tls.connect({ socket: raw, ca: options.tls.caPem, servername: "localhost" })
    : raw;
  let buf = "";
  socket.on("data", (d: Uint8Array) => (buf += new TextDecoder().decode(d)));
  socket.on("error", () => {});
  raw.on("error", () => {});
  const connected = new Promise<void>((r) =>
    socket.once(options.tls ? "secureConnect" : "connect", () => r())
  );
  if (options.send) connected.then(() => socket.write(options.send!));
  const received = new Promise<string>((r) => socket.on("close", () => r(buf)));
  return { socket, received, connected };
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

Deno.test("port 80 redirects /new, /mxdeliv and the admin API to HTTPS and serves none of them", async () => {
  await withRelay(async (t) => {
    const http = `http://${t.relay.addresses.http}`;
    const httpsPort = port(t, "https");
    for (
      const [method, path, status] of [
        ["GET", "/", 301],
        ["GET", "/new", 301],
        ["POST", "/new", 308],
        ["POST", "/cgi-bin/newemail.py", 308],
        ["POST", "/mxdeliv", 308],
        ["GET", "/api/admin/status", 301],
        ["GET", "/admin", 301],
        ["GET", "/.well-known/autoconfig/mail/config-v1.1.xml", 301],
      ] as const
    ) {
      const res = await fetch(`${http}${path}`, {
        method,
        redirect: "manual",
        headers: {
          authorization: `Bearer ${t.relay.adminToken}`,
          "x-mail-from": "a@remote.example",
          "x-mail-to": `someone@${t.domain}`,
        },
        body: method === "POST" ? "From: <a@remote.example>\r\n\r\nhello\r\n" : undefined,
      });
      const text = await res.text();
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(res.headers.get("location"), `https://127.0.0.1:${httpsPort}${path}`);
      assert.doesNotMatch(text, /"password"|"email"|"accounts"|250 /, `${path}: ${text}`);
    }
    assert.equal(await t.relay.services.store.countAccounts(), 0);
    // ACME challenges are answered on port 80 itself (none pending here: 404, not a redirect).
    const acme = await fetch(`${http}/.well-known/acme-challenge/some-token`, {
      redirect: "manual",
    });
    assert.equal(acme.status, 404);
    await acme.body?.cancel();
    // Over HTTPS, where the redirect points, /new answers.
    using client = Deno.createHttpClient({ caCerts: [t.caPem] });
    const res = await fetch(`https://localhost:${httpsPort}/new`, { method: "POST", client });
    assert.equal(res.status, 200);
    assert.match((await res.json()).email, /^[a-z0-9]{9}@\[127\.0\.0\.1\]$/);
  }, { overrides: HTTPS });
});

Deno.test("HTTP(S): half-sent requests are dropped at the head deadline; whole ones are served", async () => {
  await withRelay(async (t) => {
    const httpsPort = port(t, "https");
    const half = [
      ...Array.from({ length: 40 }, () =>
        exchange({
          port: httpsPort,
          tls: { caPem: t.caPem },
          send: "POST /new HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        })),
      ...Array.from(
        { length: 40 },
        () => exchange({ port: port(t, "http"), send: "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " }),
      ),
      // Connected, never a byte (not even a TLS hello).
      ...Array.from({ length: 20 }, () => exchange({ port: httpsPort })),
    ];
    using client = Deno.createHttpClient({ caCerts: [t.caPem] });
    const ok = await fetch(`https://localhost:${httpsPort}/robots.txt`, { client });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    // http_header_timeout = 1 s: all are closed well before this 20 s deadline, without a reply.
    const got = await within(
      20_000,
      "half-sent requests",
      Promise.all(half.map((h) => h.received)),
    );
    assert.ok(got.every((g) => !/^HTTP\/1\.1 200/.test(g)), got.join("|"));
  }, { overrides: { ...HTTPS, http_header_timeout: 1 } });
});

Deno.test("HTTP(S): connections per client address are capped; other addresses are served", async () => {
  await withRelay(async (t) => {
    for (const name of ["https", "http"] as const) {
      const p = port(t, name);
      const tlsOpt = name === "https" ? { caPem: t.caPem } : undefined;
      const held = Array.from(
        { length: 10 },
        () => exchange({ port: p, tls: tlsOpt, localAddress: "127.0.0.2" }),
      );
      await within(10_000, "ten connected", Promise.all(held.map((h) => h.connected)));
      // The eleventh from that address is turned away at once...
      const over = exchange({
        port: p,
        tls: tlsOpt,
        localAddress: "127.0.0.2",
        send: "GET /robots.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      });
      const text = await within(10_000, `${name}: eleventh`, over.received);
      assert.doesNotMatch(text, /^HTTP\/1\.1 [23]0\d/, `${name}: ${text}`);
      // ...while another address is served.
      const other = exchange({
        port: p,
        tls: tlsOpt,
        localAddress: "127.0.0.3",
        send: "GET /robots.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      });
      assert.match(
        await within(10_000, `${name}: other address`, other.received),
        /^HTTP\/1\.1 (200|301) /,
      );
      for (const h of held) h.socket.destroy();
      await Promise.all(held.map((h) => h.received));
    }
  }, { overrides: { ...HTTPS, max_connections_per_ip: 10 } });
});

Deno.test("admin API over HTTPS: token guessing is throttled; the admin's known address is not", async () => {
  await withRelay(async (t) => {
    const p = port(t, "https");
    const call = async (token: string, from: string) => {
      const { received } = exchange({
        port: p,
        tls: { caPem: t.caPem },
        localAddress: from,
        send: `GET /api/admin/status HTTP/1.1\r\nHost: localhost\r\n` +
          `Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
      });
      return Number(/^HTTP\/1\.1 (\d{3}) /.exec(await within(10_000, "answer", received))?.[1]);
    };
    // The admin's browser at 127.0.0.5 used the token before the attack.
    assert.equal(await call(t.relay.adminToken, "127.0.0.5"), 200);
    // Three free failures from 127.0.0.2, then the next guess would have to wait: refused here
    // (maxWaitMs 0), from that address and, the token being one account, from a fresh one too.
    for (let i = 1; i <= 3; i++) assert.equal(await call(`guess-${i}`, "127.0.0.2"), 401);
    assert.equal(await call("guess-4", "127.0.0.2"), 429);
    assert.equal(await call(t.relay.adminToken, "127.0.0.3"), 429);
    // The admin's known address is not held up.
    assert.equal(await call(t.relay.adminToken, "127.0.0.5"), 200);
  }, {
    overrides: HTTPS,
    // A stopped clock: the 250 ms the fourth guess must wait never pass, however slow the
    // machine is between two calls (under load the wait was over and the guess got 401).
    relay: { loginThrottle: { freeFailures: 3, maxWaitMs: 0, now: () => 1_000_000 } },
  });
});

Deno.test("HTTPS: a client that ends its side mid-body is dropped at once, not at the idle timeout", async () => {
  await withRelay(async (t) => {
    const cuts = Array.from({ length: 20 }, (_, i) => {
      const path = i % 2 ? "/mxdeliv" : "/new";
      const c = exchange({
        port: port(t, "https"),
        tls: { caPem: t.caPem },
        send:
          `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n` +
          `Content-Length: 100000\r\n\r\n${"x".repeat(1000)}`,
      });
      // FIN (after TLS close_notify) right behind the partial request.
      c.connected.then(() => c.socket.end());
      return c;
    });
    // The idle timeout is 60 s: every connection must be closed long before that.
    await within(15_000, "half-closed requests", Promise.all(cuts.map((c) => c.received)));
  }, { overrides: HTTPS });
});
