// resolvingFetch against local HTTP and HTTPS servers under made-up names: the address comes from
// the given resolver only; the name is what TLS checks and what the Host header says.

import assert from "node:assert/strict";
import { resolvingFetch } from "./resolving_fetch.ts";
import { generateSelfSigned } from "./tls.ts";

function recorder(table: Record<string, string[]>) {
  const asked: string[] = [];
  const resolve = (host: string) => {
    asked.push(host);
    return Promise.resolve(table[host] ?? []);
  };
  return { asked, resolve };
}

Deno.test("resolvingFetch: the host's address comes from the resolver, the name stays", async () => {
  const seen: { method: string; host: string | null; body: string; type: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    seen.push({
      method: req.method,
      host: req.headers.get("host"),
      body: await req.text(),
      type: req.headers.get("content-type"),
    });
    return new Response("notified", { status: 200, headers: { "x-answer": "yes" } });
  });
  try {
    const { asked, resolve } = recorder({ "push.test": ["127.0.0.1"] });
    const f = resolvingFetch(resolve);
    const res = await f(`http://push.test:${server.addr.port}/notify?x=1`, {
      method: "POST",
      body: "token-1",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-answer"), "yes");
    assert.equal(await res.text(), "notified");
    assert.deepEqual(asked, ["push.test"]);
    assert.deepEqual(seen, [{
      method: "POST",
      host: `push.test:${server.addr.port}`,
      body: "token-1",
      type: "text/plain",
    }]);
    // An IP literal is used as it is: nothing to resolve.
    const direct = await f(`http://127.0.0.1:${server.addr.port}/`);
    await direct.body?.cancel();
    assert.deepEqual(asked, ["push.test"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("resolvingFetch: a name without an address fails; /etc/hosts is not asked", async () => {
  const { asked, resolve } = recorder({});
  // localhost is in every /etc/hosts: the resolver alone decides.
  await assert.rejects(resolvingFetch(resolve)("http://localhost:9/"), /localhost has no address/);
  assert.deepEqual(asked, ["localhost"]);
});

Deno.test("resolvingFetch: HTTPS checks the certificate against the name, not the address", async () => {
  const material = await generateSelfSigned(["push.test"]);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: material.certPem,
    key: material.keyPem,
    onListen() {},
  }, () => new Response("ok"));
  try {
    const { resolve } = recorder({
      "push.test": ["127.0.0.1"],
      "other.test": ["127.0.0.1"],
    });
    const f = resolvingFetch(resolve, { caCerts: [material.caPem!] });
    const res = await f(`https://push.test:${server.addr.port}/`);
    assert.equal(await res.text(), "ok");
    // Same address, a name the certificate does not carry: refused.
    await assert.rejects(f(`https://other.test:${server.addr.port}/`), /other\.test|altnames/i);
    // Trusting the system's roots only: the private CA is refused.
    await assert.rejects(resolvingFetch(resolve)(`https://push.test:${server.addr.port}/`));
  } finally {
    await server.shutdown();
  }
});

Deno.test("resolvingFetch: an abort ends a request the server never answers", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new Promise<Response>((r) => req.signal.addEventListener("abort", () => r(new Response()))),
  );
  try {
    const { resolve } = recorder({ "slow.test": ["127.0.0.1"] });
    const abort = new AbortController();
    const pending = resolvingFetch(resolve)(`http://slow.test:${server.addr.port}/`, {
      signal: abort.signal,
    });
    abort.abort(new Error("given up"));
    await assert.rejects(pending, /given up/);
  } finally {
    await server.shutdown();
  }
});
