// Fails when src/admin/web_assets.gen.ts does not match a fresh build of web/, so a forgotten
// `deno run -A scripts/build_web.ts` is caught by CI.

import assert from "node:assert/strict";
import { buildWebAssets, GENERATED, minifyCss } from "../../scripts/build_web.ts";

Deno.test("web_assets.gen.ts is up to date with web/ (run: deno run -A scripts/build_web.ts)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-web-check-" });
  const fresh = `${dir}/web_assets.gen.ts`;
  await Deno.writeTextFile(fresh, await buildWebAssets());
  const stale = (await Deno.readTextFile(fresh)) !== (await Deno.readTextFile(GENERATED));
  // A stale file stays behind so the difference can be inspected.
  if (!stale) await Deno.remove(dir, { recursive: true });
  assert.ok(
    !stale,
    `src/admin/web_assets.gen.ts is stale (fresh build: ${fresh}); run "deno run -A scripts/build_web.ts"`,
  );
});

Deno.test("buildWebAssets() is deterministic", async () => {
  assert.equal(await buildWebAssets(), await buildWebAssets());
});

Deno.test("minifyCss() drops comments and whitespace only", () => {
  assert.equal(
    minifyCss(
      "/* x */\n.a > .b ,\n.c {\n  color : red;\n  margin: 0 auto ;\n}\n@media (max-width: 760px) { .d { e: f; } }",
    ),
    ".a>.b,.c{color : red;margin: 0 auto}@media (max-width: 760px){.d{e: f}}",
  );
});
