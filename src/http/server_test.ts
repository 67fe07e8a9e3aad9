import assert from "node:assert/strict";
import { Hono } from "hono";
import { generateSelfSigned } from "../net/mod.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import { clientAddress } from "./client_address.ts";
import { createMetricsApp } from "./app.ts";
import { startHttpServer } from "./server.ts";

function echoApp() {
  const app = new Hono();
  app.get("/who", (c) => c.text(clientAddress(c)));
  return app;
}

Deno.test("startHttpServer() serves plain HTTP on a free port and passes the peer address", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  assert.ok(server.port > 0);
  const res = await fetch(`http://127.0.0.1:${server.port}/who`);
  assert.equal(await res.text(), "127.0.0.1");
});

Deno.test("startHttpServer() serves HTTPS with the given certificate", async () => {
  const tls = await generateSelfSigned(["localhost", "127.0.0.1"]);
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    tls: () => tls,
  });
  using client = Deno.createHttpClient({ caCerts: [tls.caPem!] });
  const res = await fetch(`https://localhost:${server.port}/who`, { client });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "127.0.0.1");
});

Deno.test("startHttpServer() reports a busy port", async () => {
  await using first = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  await assert.rejects(
    startHttpServer({ address: `127.0.0.1:${first.port}`, app: echoApp() }),
    /Cannot listen on 127\.0\.0\.1:\d+/,
  );
});

Deno.test("createMetricsApp() serves the registry as Prometheus text", async () => {
  const metrics = createRelayMetrics();
  metrics.pushSent.inc();
  const app = createMetricsApp({ metricsText: () => metrics.render() });
  await using server = await startHttpServer({ address: "127.0.0.1:0", app });
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.match(await res.text(), /^tern_push_sent_total 1$/m);
  const other = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.equal(other.status, 404);
  await other.body?.cancel();
});
