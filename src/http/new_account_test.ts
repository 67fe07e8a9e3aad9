import assert from "node:assert/strict";
import { createHttpApp } from "./app.ts";
import { fromAddress, httpServices, IP_SELF_SIGNED, TRUSTED } from "./testdata/services.ts";
import { isRelayError } from "../errors.ts";

Deno.test("POST /new hands out credentials without creating the account; the first login creates it", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  for (const path of ["/new", "/cgi-bin/newemail.py"]) {
    const res = await app.request(path, { method: "POST" }, fromAddress("198.51.100.1"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    const text = await res.text();
    assert.match(text, /^\{"email": "[a-z0-9]{9}@example\.org", "password": "[A-Za-z0-9]{12}"\}$/);
    const body = JSON.parse(text);
    assert.equal(await t.store.getAccount(body.email), null);
    const account = await t.accounts.authenticate(body.email, body.password);
    assert.equal(account.address, body.email);
  }
});

Deno.test("GET /new redirects to dcaccount: with a trusted certificate", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  for (const path of ["/new", "/cgi-bin/newemail.py"]) {
    const res = await app.request(path);
    assert.equal(res.status, 301);
    assert.equal(res.headers.get("location"), "dcaccount:https://example.org/new");
  }
  using dev = await httpServices({ ...TRUSTED, ports: { ...TRUSTED.ports, https: 8443 } });
  const res = await createHttpApp(dev.deps).request("/new");
  assert.equal(res.headers.get("location"), "dcaccount:https://example.org:8443/new");
});

Deno.test("GET /new on a self-signed IP relay answers like POST, with a dclogin URL carrying the real ports", async () => {
  using t = await httpServices(IP_SELF_SIGNED);
  const app = createHttpApp(t.deps);
  const res = await app.request("/new", {}, fromAddress("198.51.100.1"));
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.match(body.email, /^[a-z0-9]{9}@\[192\.0\.2\.1\]$/);
  assert.equal(
    body.dclogin_url,
    `dclogin:${body.email}?p=${body.password}&v=1&ih=192.0.2.1&ip=2993&is=ssl&sh=192.0.2.1&sp=2465&ss=ssl&ic=3`,
  );
  const account = await t.accounts.authenticate(body.email, body.password);
  assert.equal(account.address, body.email);
});

Deno.test("POST /new answers 403 while registration is closed or JIT is off", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  await t.settings.set("registration", "closed");
  let res = await app.request("/new", { method: "POST" }, fromAddress("198.51.100.1"));
  assert.equal(res.status, 403);
  assert.equal(await res.text(), '{"error": "registration is closed"}');
  await t.settings.set("registration", "open");
  await t.settings.set("jit_enabled", "false");
  res = await app.request("/new", { method: "POST" }, fromAddress("198.51.100.1"));
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { error: "registration is closed" });
});

Deno.test("POST /new in token mode consumes a token and reserves the address", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  await t.settings.set("registration", "token");
  await t.store.createToken({
    token: "invite-1",
    maxUses: 2,
    uses: 0,
    expiresAt: null,
    createdAt: 0,
    comment: "",
  });
  const post = (path: string, init: RequestInit = {}) =>
    app.request(path, { method: "POST", ...init }, fromAddress("198.51.100.7"));

  let res = await post("/new");
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { error: "registration token required" });
  res = await post("/new?token=wrong");
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { error: "invalid registration token" });

  res = await post("/new?token=invite-1");
  assert.equal(res.status, 200);
  const first = await res.json();
  // Registration needs a token, so only the reservation lets this first login create the account.
  assert.equal((await t.accounts.authenticate(first.email, first.password)).address, first.email);
  const other = t.accounts.generateCredentials();
  await assert.rejects(
    t.accounts.authenticate(other.email, other.password),
    (e) => isRelayError(e, "registration_closed"),
  );

  res = await post("/new", {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: "invite-1" }),
  });
  assert.equal(res.status, 200);
  assert.equal((await t.store.getToken("invite-1"))!.uses, 2);
  res = await post("/new", { body: new URLSearchParams({ token: "invite-1" }) });
  assert.equal(res.status, 403, "the token is used up");
  t.clock.now += 1000; // five requests so far: let the rate limit refill
  res = await post("/new", { headers: { "content-type": "application/json" }, body: "{not json" });
  assert.equal(res.status, 400);
});

Deno.test("POST /new in token mode reads at most 16 KiB of body, whatever its type or length", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  await t.settings.set("registration", "token");
  // A JSON or form body of 64 MiB, made as it is read; nothing limits the client otherwise.
  const endless = () => {
    const stats = { pulled: 0 };
    const piece = new Uint8Array(64 * 1024).fill(0x61);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"token": "'));
      },
      pull(controller) {
        if (stats.pulled >= 64 * 1024 * 1024) return controller.close();
        stats.pulled += piece.length;
        controller.enqueue(piece);
      },
    });
    return { body, stats };
  };
  for (
    const type of ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]
  ) {
    t.clock.now += 10_000; // a fresh rate-limit bucket for each request
    const { body, stats } = endless();
    const res = await app.request("/new", {
      method: "POST",
      headers: { "content-type": type },
      body,
      // @ts-ignore: required by the fetch spec for stream bodies
      duplex: "half",
    }, fromAddress("198.51.100.9"));
    assert.equal(res.status, 413, type);
    assert.deepEqual(await res.json(), { error: "request body too large" });
    assert.ok(stats.pulled < 1024 * 1024, `${type}: read ${stats.pulled} bytes`);
  }
  t.clock.now += 10_000;
  const declared = await app.request("/new", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(100 << 20) },
    body: "{}",
  }, fromAddress("198.51.100.9"));
  assert.equal(declared.status, 413, "a Content-Length over the cap is refused before reading");
});

Deno.test("POST /new is rate limited per client address (burst 5, 2 per second)", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  const post = (ip: string) => app.request("/new", { method: "POST" }, fromAddress(ip));
  for (let i = 0; i < 5; i++) assert.equal((await post("203.0.113.5")).status, 200, `request ${i}`);
  const limited = await post("203.0.113.5");
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "1");
  assert.deepEqual(await limited.json(), { error: "too many requests" });
  assert.equal((await post("203.0.113.6")).status, 200, "other addresses are not affected");
  t.clock.now += 500;
  assert.equal((await post("203.0.113.5")).status, 200);
  assert.equal((await post("203.0.113.5")).status, 429);
});

Deno.test("POST /new counts an IPv6 client by its /64", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  const post = (ip: string) => app.request("/new", { method: "POST" }, fromAddress(ip));
  for (let i = 0; i < 5; i++) {
    assert.equal((await post(`2001:db8:5:6::${i + 1}`)).status, 200, `request ${i}`);
  }
  assert.equal((await post("2001:db8:5:6::99")).status, 429, "another address of the same /64");
  assert.equal((await post("2001:db8:5:7::1")).status, 200, "another /64");
});

Deno.test("/new answers other methods with 405", async () => {
  using t = await httpServices();
  const res = await createHttpApp(t.deps).request("/new", { method: "PUT" });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "GET, POST");
  assert.deepEqual(await res.json(), { error: "method not allowed" });
});
