import assert from "node:assert/strict";
import { createHttpApp } from "./app.ts";
import type { MxdelivAnswer, MxdelivEnvelope } from "./backend.ts";
import { httpServices, TRUSTED } from "./testdata/services.ts";

/** A handler that records each delivery: envelope, pieces written, and how it ended. */
function recorder(answer = { status: 200, text: "250 OK" }, refuse?: MxdelivAnswer) {
  const calls: {
    envelope: MxdelivEnvelope;
    body: string;
    pieces: number;
    ended: "end" | "abort" | null;
  }[] = [];
  const dec = new TextDecoder();
  const handler = (envelope: MxdelivEnvelope) => {
    if (refuse) {
      calls.push({ envelope, body: "", pieces: 0, ended: null });
      return Promise.resolve(refuse);
    }
    const call = { envelope, body: "", pieces: 0, ended: null as "end" | "abort" | null };
    calls.push(call);
    return Promise.resolve({
      write(chunk: Uint8Array) {
        assert.equal(call.ended, null, "no write after the end");
        call.body += dec.decode(chunk, { stream: true });
        call.pieces++;
        return Promise.resolve();
      },
      end() {
        assert.equal(call.ended, null);
        call.ended = "end";
        return Promise.resolve(answer);
      },
      abort() {
        assert.equal(call.ended, null);
        call.ended = "abort";
        return Promise.resolve();
      },
    });
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
    pieces: 1,
    ended: "end",
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

Deno.test("POST /mxdeliv refuses bodies over max_message_size with 413, by Content-Length before the handler", async () => {
  const r = recorder();
  using t = await httpServices({
    ...TRUSTED,
    limits: { ...TRUSTED.limits, maxMessageBytes: 1000 },
  });
  t.deps.mxdeliv = r.handler;
  const app = createHttpApp(t.deps);
  const headers = { "x-mail-to": "bob@example.org" };
  let res = await app.request("/mxdeliv", {
    method: "POST",
    headers: { ...headers, "content-length": "1001" },
    body: "a".repeat(1001),
  });
  assert.equal(res.status, 413);
  assert.equal(await res.text(), "552 Message exceeds maximum size");
  assert.equal(r.calls.length, 0, "a declared size over the cap never starts a delivery");
  res = await app.request("/mxdeliv", { method: "POST", headers, body: "a".repeat(1001) });
  assert.equal(res.status, 413);
  await res.body?.cancel();
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
  // Without a Content-Length each body is cut off while streaming: aborted, never ended.
  assert.deepEqual(r.calls.map((c) => c.ended), ["abort", "abort", "end"]);
  assert.ok(r.calls[0].body.length <= 1000, "nothing past the cap reached the delivery");
});

Deno.test("POST /mxdeliv streams the body in pieces as it arrives, and aborts when the peer goes away", async () => {
  const r = recorder();
  using t = await httpServices(TRUSTED, { mxdeliv: r.handler });
  const app = createHttpApp(t.deps);
  const headers = { "x-mail-to": "bob@example.org" };
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      // Each piece is asked for only after the delivery took the one before (back-pressure).
      assert.equal(r.calls[0]?.pieces ?? 0, pulls);
      if (pulls++ < 4) ctl.enqueue(new TextEncoder().encode(`piece ${pulls}\r\n`));
      else ctl.close();
    },
  }, { highWaterMark: 0 });
  let res = await app.request("/mxdeliv", { method: "POST", headers, body: stream });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(r.calls[0].body, "piece 1\r\npiece 2\r\npiece 3\r\npiece 4\r\n");
  assert.equal(r.calls[0].pieces, 4);
  const broken = new ReadableStream<Uint8Array>({
    start(ctl) {
      ctl.enqueue(new Uint8Array(10));
      ctl.error(new Error("connection reset"));
    },
  });
  // A normal end, not a server failure: the delivery was aborted, not ended.
  res = await app.request("/mxdeliv", { method: "POST", headers, body: broken });
  assert.equal(res.status, 400);
  assert.equal(await res.text(), "421 4.4.2 The request body was cut off");
  assert.equal(r.calls[1].ended, "abort");
});

Deno.test("POST /mxdeliv: a handler that answers at once never sees the body", async () => {
  const r = recorder(undefined, { status: 400, text: "550 5.1.1 <x@example.org>: unknown" });
  using t = await httpServices(TRUSTED, { mxdeliv: r.handler });
  const res = await createHttpApp(t.deps).request("/mxdeliv", {
    method: "POST",
    headers: { "x-mail-to": "x@example.org" },
    body: "Subject: x\r\n\r\nhi",
  });
  assert.equal(res.status, 400);
  assert.equal(await res.text(), "550 5.1.1 <x@example.org>: unknown");
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

Deno.test("POST /mxdeliv refuses more recipients than max_recipients before the handler, as SMTP does", async () => {
  using t = await httpServices({ ...TRUSTED, limits: { ...TRUSTED.limits, maxRecipients: 3 } });
  const r = recorder();
  const app = createHttpApp({ ...t.deps, mxdeliv: r.handler });
  const post = (to: string[]) =>
    app.request("/mxdeliv", {
      method: "POST",
      headers: { "x-mail-from": "a@remote.example", "x-mail-to": to.join(", ") },
      body: "Subject: x\r\n\r\nhi\r\n",
    });
  const four = ["b@example.org", "c@example.org", "d@example.org", "e@example.org"];
  let res = await post(four);
  assert.equal(res.status, 400);
  assert.equal(await res.text(), "452 4.5.3 Too many recipients");
  assert.equal(r.calls.length, 0);
  res = await post(four.slice(0, 3));
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.deepEqual(r.calls.map((c) => c.envelope.recipients.length), [3]);
});

Deno.test("POST /mxdeliv takes the body dot-stuffed, as the reference's filtermail sends it, split anywhere", async () => {
  // chatmail-relay.md §5.5: the body is the DATA as SMTP carries it, without the final ".".
  const stuffed = "Subject: x\r\n\r\n..leading dot\r\n..\r\n...two\r\nmid.dle\r\n..\r\nend.\r\n";
  const message = "Subject: x\r\n\r\n.leading dot\r\n.\r\n..two\r\nmid.dle\r\n.\r\nend.\r\n";
  const r = recorder();
  using t = await httpServices(TRUSTED, { mxdeliv: r.handler });
  const app = createHttpApp(t.deps);
  const bytes = new TextEncoder().encode(stuffed);
  for (let at = 0; at <= bytes.length; at++) {
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(bytes.slice(0, at));
        ctl.enqueue(bytes.slice(at));
        ctl.close();
      },
    });
    const res = await app.request("/mxdeliv", {
      method: "POST",
      headers: { "x-mail-to": "bob@example.org" },
      body,
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(r.calls.at(-1)!.body, message, `split at ${at}`);
  }
});
