import assert from "node:assert/strict";
import { createAdminApp } from "./app.ts";
import { SPA_CSP } from "./spa.ts";
import { WEB_ASSETS } from "./web_assets.gen.ts";
import { ADMIN_TOKEN, adminServices, fromAddress } from "./testdata/services.ts";
import { createHttpApp } from "../http/mod.ts";
import { httpServices } from "../http/testdata/services.ts";

Deno.test("the SPA is served at /admin and /admin/* with a strict CSP and hashed assets", async () => {
  using t = await adminServices();
  const app = createAdminApp(t.deps);
  for (const path of ["/admin", "/admin/", "/admin/accounts/x"]) {
    const res = await app.request(path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-security-policy"), SPA_CSP);
    assert.equal(await res.text(), WEB_ASSETS.html);
  }
  assert.ok(WEB_ASSETS.html.includes(`/admin/assets/app-${WEB_ASSETS.hash}.js`));
  const js = await app.request(`/admin/assets/app-${WEB_ASSETS.hash}.js`);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.match(js.headers.get("cache-control")!, /immutable/);
  assert.equal(await js.text(), WEB_ASSETS.js);
  const css = await app.request(`/admin/assets/app-${WEB_ASSETS.hash}.css`);
  assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  assert.equal(await css.text(), WEB_ASSETS.css);
  const stale = await app.request("/admin/assets/app-000000000000.js");
  assert.equal(stale.status, 404);
  await stale.body?.cancel();
});

Deno.test("createHttpApp() mounts the admin app: API behind the token, JSON 404s inside it", async () => {
  using a = await adminServices();
  using h = await httpServices();
  const app = createHttpApp({ ...h.deps, admin: createAdminApp(a.deps) });
  const get = (path: string, token?: string) =>
    app.request(
      path,
      { headers: token ? { authorization: `Bearer ${token}` } : {} },
      fromAddress(),
    );
  let res = await get("/api/admin/status", ADMIN_TOKEN);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).version, "0.1.0-test");
  res = await get("/api/admin/status");
  assert.equal(res.status, 401);
  await res.body?.cancel();
  res = await get("/api/admin/nothing-here", ADMIN_TOKEN);
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { error: "not found" });
  res = await get("/admin");
  assert.equal(res.headers.get("content-security-policy"), SPA_CSP, "the SPA keeps its own CSP");
  await res.body?.cancel();
  res = await get("/");
  assert.equal(res.status, 200, "public pages still work next to the admin app");
  await res.body?.cancel();
});
