// Builds the release artefacts: `deno compile` into dist/tern (needs Deno's runtime base,
// denort; see README "Building"), or with --bundle-only one JS file, dist/tern.js, that runs with
// `deno run --no-config`. Fails with a one-line reason instead of a stack trace.

import { V8_FLAGS } from "../src/cli/runtime_env.ts";

const bundleOnly = Deno.args.includes("--bundle-only");
const target = Deno.args.find((a) => a.startsWith("--target="))?.slice(9);

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
  const r = await run(["bundle", "--platform=deno", "--frozen", "-o", out, entry]);
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
if (bundleOnly) {
  // The store threads get a bundle of their own, embedded as text at the top of dist/tern.js
  // (src/store/sqlite/thread_main.ts says why; store_thread.ts starts threads from it).
  const threadOut = "dist/.store_thread.js";
  await bundle("src/store/sqlite/thread_main.ts", threadOut);
  const threadSource = await Deno.readTextFile(threadOut);
  await Deno.remove(threadOut);
  await bundle("main.ts", "dist/tern.js");
  const main = await Deno.readTextFile("dist/tern.js");
  await Deno.writeTextFile(
    "dist/tern.js",
    asciiOnly(
      `globalThis.ternStoreThreadSource = ${JSON.stringify(asciiOnly(threadSource))};\n${main}`,
    ),
  );
  console.log(
    "compile: wrote dist/tern.js (run it with: deno run -A --no-config dist/tern.js serve …)",
  );
} else {
  const r = await run([
    "compile",
    "--frozen",
    "-A",
    `--v8-flags=${V8_FLAGS.join(",")}`,
    ...(target ? ["--target", target] : []),
    "-o",
    "dist/tern",
    "main.ts",
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
