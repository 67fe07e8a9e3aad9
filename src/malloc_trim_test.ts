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

Deno.test("malloc_trim: without the FFI permission none, and no prompt for it", async () => {
  const module = new URL("./malloc_trim.ts", import.meta.url).href;
  const code = `import { libcTrim, trimUnavailable } from "${module}";
console.log(JSON.stringify([libcTrim() === null, trimUnavailable]));`;
  // `deno run -` reads the program from stdin and grants it nothing.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-"],
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const [none, why] = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(none, true);
  assert.match(why, Deno.build.os === "linux" ? /FFI permission/ : /not Linux/);
});
