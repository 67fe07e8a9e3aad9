// Builds the release artefacts: one JS file, dist/tern.js, that runs with `deno run --no-config`
// (--bundle-only), and, from that same file, `deno compile` into dist/tern (needs Deno's runtime
// base, denort; see README "Building one file"). Fails with a one-line reason instead of a stack
// trace.
//
// The bundle is minified (whitespace, comments, local names; function and class names kept, so
// stack traces and error names read as in the sources; messages are string literals and stay as
// written). What that saves, `deno run -A --no-config dist/tern.js serve` with the bench's
// configuration and environment, RSS 2 s after the IMAPS greeting (2026-12-04, four restarts each,
// interleaved): 3.5 MB file 61.2-62.0 MB, 1.8 MB minified 56.6-57.8 MB. V8 keeps the script's
// source for as long as it runs, and what it compiles and caches shrinks with it. --no-minify
// writes the readable one.
//
// The binary embeds the bundle rather than the sources: the file the bundle test runs is the one
// operators get, and a compiled binary hands V8 an ASCII-only module straight from the
// executable's mapped pages (no copy on the heap), which the ASCII-escaped bundle is.

import { dirname } from "node:path";
import { V8_FLAGS } from "../src/cli/runtime_env.ts";

const bundleOnly = Deno.args.includes("--bundle-only");
const target = Deno.args.find((a) => a.startsWith("--target="))?.slice(9);
const minify = !Deno.args.includes("--no-minify");
/** Where the bundle goes (--out=PATH; the benchmark builds one into its own directory). */
const bundlePath = Deno.args.find((a) => a.startsWith("--out="))?.slice(6) ?? "dist/tern.js";

async function run(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
}

/** `deno bundle` of `entry` into `out`; exits with the reason when it fails. */
async function bundle(entry: string, out: string) {
  const r = await run([
    "bundle",
    "--platform=deno",
    "--frozen",
    ...(minify ? ["--minify", "--keep-names"] : []),
    "-o",
    out,
    entry,
  ]);
  if (!r.ok) {
    console.error(
      `compile: bundle failed: ${
        r.stderr.trim().split("\n").find((l) => l.startsWith("error")) ?? r.stderr.trim()
      }`,
    );
    Deno.exit(1);
  }
}

/**
 * The text with every non-ASCII character written as a \u escape. V8 keeps a script's source for
 * as long as the script lives, one byte per character when all of it is Latin-1, two otherwise:
 * the few "§", "…" and "≤" in comments made all 3.3 MB of dist/tern.js take 6.6 MB of every
 * relay's heap. The bundle has them only in comments, strings and regular expressions, where
 * the escape means the same character (in a comment it means nothing at all).
 */
function asciiOnly(text: string): string {
  return text.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

await Deno.mkdir("dist", { recursive: true });
await Deno.mkdir(dirname(bundlePath), { recursive: true });
// The store threads get a bundle of their own, embedded as text at the top of dist/tern.js
// (src/store/sqlite/thread_main.ts says why; store_thread.ts starts threads from it).
const threadOut = `${bundlePath}.store_thread.js`;
await bundle("src/store/sqlite/thread_main.ts", threadOut);
const threadSource = await Deno.readTextFile(threadOut);
await Deno.remove(threadOut);
await bundle("main.ts", bundlePath);
const main = await Deno.readTextFile(bundlePath);
await Deno.writeTextFile(
  bundlePath,
  asciiOnly(
    `globalThis.ternStoreThreadSource = ${JSON.stringify(asciiOnly(threadSource))};\n${main}`,
  ),
);
console.log(
  `compile: wrote ${bundlePath} (run it with: deno run -A --no-config ${bundlePath} serve …)`,
);
if (!bundleOnly) {
  const r = await run([
    "compile",
    "--no-config",
    "-A",
    `--v8-flags=${V8_FLAGS.join(",")}`,
    ...(target ? ["--target", target] : []),
    "-o",
    "dist/tern",
    bundlePath,
  ]);
  if (!r.ok) {
    const line = r.stderr.split("\n").find((l) => /error/i.test(l)) ?? "unknown error";
    const hint = /dl\.deno\.land|dns error|Download/i.test(r.stderr)
      ? " (the runtime base could not be fetched: set DENORT_BIN or place denort-<target>.zip under $DENO_DIR/dl/release/v<version>/)"
      : "";
    console.error(`compile: failed: ${line.trim()}${hint}`);
    Deno.exit(1);
  }
  console.log("compile: wrote dist/tern");
}
