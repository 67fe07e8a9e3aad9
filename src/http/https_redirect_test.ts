import assert from "node:assert/strict";
import { httpsRedirectApp } from "./https_redirect.ts";
import type { HttpDeps } from "./backend.ts";

function config(over: Partial<HttpDeps["config"]> = {}): HttpDeps["config"] {
  return {
    mailDomain: "chat.example.org",
    hostname: "mx.example.org",
    isIpDomain: false,
    selfSigned: false,
    ports: { imaps: 993, imap: 143, submissions: 465, submission: 587, https: 443 },
    adminContact: "",
    limits: {
      maxMessageBytes: 1,
      maxRecipients: 1,
      maxMailboxBytes: 1,
      sendPerMinute: 1,
      deleteMailsAfterDays: 1,
      deleteLargeAfterDays: 1,
      deleteInactiveUsersAfterDays: 1,
    },
    ...over,
  };
}

Deno.test("port 80 redirects every page and API to HTTPS, keeping path and query", async () => {
  const app = httpsRedirectApp({ config: config() });
  for (
    const [method, path, status] of [
      ["GET", "/", 301],
      ["GET", "/new?token=abc", 301],
      ["HEAD", "/info", 301],
      ["POST", "/new", 308],
      ["POST", "/mxdeliv", 308],
      ["GET", "/api/admin/status", 301],
      ["DELETE", "/api/admin/accounts/x", 308],
      ["GET", "/.well-known/mta-sts.txt", 301],
    ] as const
  ) {
    const res = await app.request(`http://chat.example.org${path}`, {
      method,
      headers: { host: "chat.example.org" },
      body: method === "POST" ? "secret body" : undefined,
    });
    assert.equal(res.status, status, `${method} ${path}`);
    assert.equal(res.headers.get("location"), `https://chat.example.org${path}`, path);
    const text = await res.text();
    assert.doesNotMatch(text, /password|secret/);
  }
});

Deno.test("port 80 keeps known host names, falls back to the hostname, and names a non-443 port", async () => {
  const app = httpsRedirectApp({ config: config() });
  const loc = async (host: string, path = "/x") =>
    (await app.request(`http://h${path}`, { headers: { host } })).headers.get("location");
  assert.equal(await loc("mta-sts.chat.example.org:80"), "https://mta-sts.chat.example.org/x");
  assert.equal(await loc("WWW.chat.example.org"), "https://www.chat.example.org/x");
  assert.equal(await loc("mx.example.org"), "https://mx.example.org/x");
  assert.equal(await loc("evil.example"), "https://mx.example.org/x");
  assert.equal(await loc("a b"), "https://mx.example.org/x");
  const dev = httpsRedirectApp({
    config: config({
      mailDomain: "[127.0.0.1]",
      hostname: "127.0.0.1",
      isIpDomain: true,
      ports: { imaps: 1, imap: 1, submissions: 1, submission: 1, https: 8443 },
    }),
  });
  const res = await dev.request("http://127.0.0.1:8080/new", {
    method: "POST",
    headers: { host: "127.0.0.1:8080" },
  });
  assert.equal(res.headers.get("location"), "https://127.0.0.1:8443/new");
  await res.body?.cancel();
});

Deno.test("port 80 answers ACME HTTP-01 challenges itself", async () => {
  const app = httpsRedirectApp({
    config: config(),
    acmeChallenge: (t) => (t === "tok-1" ? "tok-1.thumbprint" : null),
  });
  const ok = await app.request("http://chat.example.org/.well-known/acme-challenge/tok-1");
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "tok-1.thumbprint");
  const unknown = await app.request("http://chat.example.org/.well-known/acme-challenge/nope");
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
});
