import assert from "node:assert/strict";
import { RUNTIME_ENV } from "./runtime_env.ts";

const hasSmaps = (() => {
  try {
    Deno.statSync("/proc/self/smaps");
    return true;
  } catch {
    return false;
  }
})();

/** Runs testdata/`file` with the shipped environment; what it printed, as JSON (RSS in KiB). */
async function runTestdata(file: string): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`./testdata/${file}`, import.meta.url).pathname],
    env: { NO_COLOR: "1", ...RUNTIME_ENV },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test({
  name: "runtime env: the heap pages of ended Workers go back to the system at once",
  ignore: !hasSmaps,
  async fn() {
    const kib = await runTestdata("worker_pages.ts") as {
      before: number;
      alive: number;
      after: number;
    };
    // Two live Workers hold some MB of V8 pages; without the flag V8 keeps them all pooled
    // after the Workers ended (for another isolate to reuse), so `after` stays near `alive`.
    assert.ok(kib.alive - kib.before >= 4096, `two Workers' pages: ${JSON.stringify(kib)}`);
    assert.ok(
      kib.after - kib.before < (kib.alive - kib.before) / 4,
      `pages left after the Workers ended: ${JSON.stringify(kib)}`,
    );
  },
});

Deno.test({
  name: "runtime env: native memory that starting freed goes back to the system once started",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const kib = await runTestdata("freed_native.ts") as {
      before: number;
      after: number;
    };
    // 80 MB were allocated and freed; glibc keeps nearly all of it until malloc_trim.
    assert.ok(kib.before - kib.after >= 40 * 1024, `RSS before and after: ${JSON.stringify(kib)}`);
  },
});
