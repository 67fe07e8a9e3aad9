import assert from "node:assert/strict";
import { createHttpApp } from "./app.ts";
import type { MxdelivEnvelope } from "./backend.ts";
import { httpServices, TRUSTED } from "./testdata/services.ts";

function recorder(answer = { status: 200, text: "250 OK" }) {
  const calls: { envelope: MxdelivEnvelope; body: string }[] = [];
  const handler = (envelope: MxdelivEnvelope, body: Uint8Array) => {
    calls.push({ envelope, body: new TextDecoder().decode(body) });
    return Promise.resolve(answer);
  };
  return { calls, handler };
}

Deno.test("POST /mxdeliv passes the envelope and body to the handler and returns its answer", async () => {
  const r = recorder();
  using t = await httpServices(TRUSTED, { mxdeliv: r.handler });
  const headers = new Headers({ "x-mail-from": "<alice@other.example>" });
  headers.append("x-mail-to", "bob@example.org");
  headers.append("X-Mail-To", "<carol@example.org>, dave@example.org");
  const res = await createHttpApp(t.deps).request("/mxdeliv", {
    method: "POST",
    headers,
    body: "Subject: x\r\n\r\nhi",
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "250 OK");
  assert.deepEqual(r.calls, [{
    envelope: {
      mailFrom: "alice@other.example",
      recipients: ["bob@example.org", "carol@example.org", "dave@example.org"],
    },
    body: "Subject: x\r\n\r\nhi",
  }]);
});

Deno.test("POST /mxdeliv relays a rejection status and text; a missing X-Mail-From is the null sender", async () => {
  const r = recorder({ status: 400, text: "523 Encryption Needed: Invalid Unencrypted Mail" });
  using t = await httpServices(TRUSTED, { mxdeliv: r.handler });
  const res = await createHttpApp(t.deps).request("/mxdeliv", {
    method: "POST",
    headers: { "x-mail-to": "bob@example.org" },
    body: "x",
  });
  assert.equal(res.status, 400);
  assert.equal(await res.text(), "523 Encryption Needed: Invalid Unencrypted Mail");
  assert.equal(r.calls[0].envelope.mailFrom, "");
});

Deno.test("POST /mxdeliv refuses bodies over max_message_size with 413 before calling the handler", async () => {
  const r = recorder();
  using t = await httpServices({
    ...TRUSTED,
    limits: { ...TRUSTED.limits, maxMessageBytes: 1000 },
  });
  t.deps.mxdeliv = r.handler;
  const app = createHttpApp(t.deps);
  const headers = { "x-mail-to": "bob@example.org" };
  let res = await app.request("/mxdeliv", { method: "POST", headers, body: "a".repeat(1001) });
  assert.equal(res.status, 413);
  assert.equal(await res.text(), "552 Message exceeds maximum size");
  // Without a Content-Length the stream itself is cut off.
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      for (let i = 0; i < 5; i++) ctl.enqueue(new Uint8Array(300));
      ctl.close();
    },
  });
  res = await app.request("/mxdeliv", { method: "POST", headers, body: stream });
  assert.equal(res.status, 413);
  await res.body?.cancel();
  res = await app.request("/mxdeliv", { method: "POST", headers, body: "a".repeat(1000) });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(r.calls.length, 1);
});

Deno.test("/mxdeliv: 503 without a handler, 400 without recipients, 405 for other methods", async () => {
  using t = await httpServices();
  let res = await createHttpApp(t.deps).request("/mxdeliv", {
    method: "POST",
    headers: { "x-mail-to": "b@example.org" },
  });
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { error: "federation delivery is not available" });
  const r = recorder();
  const app = createHttpApp({ ...t.deps, mxdeliv: r.handler });
  res = await app.request("/mxdeliv", { method: "POST", body: "x" });
  assert.equal(res.status, 400);
  await res.body?.cancel();
  res = await app.request("/mxdeliv");
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "POST");
  await res.body?.cancel();
  assert.equal(r.calls.length, 0);
});
