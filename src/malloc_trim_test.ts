import assert from "node:assert/strict";
import { libcTrim, trimUnavailable } from "./malloc_trim.ts";

const glibc = (() => {
  try {
    return Deno.build.os === "linux" &&
      Deno.readTextFileSync("/proc/self/maps").includes("/libc.so.6");
  } catch {
    return false;
  }
})();

Deno.test({
  name: "malloc_trim: found in glibc and callable, once",
  ignore: !glibc,
  fn() {
    const trim = libcTrim();
    assert.ok(trim, `no trim: ${trimUnavailable}`);
    assert.equal(trimUnavailable, null);
    trim();
    assert.equal(libcTrim(), trim, "looked up once");
  },
});
