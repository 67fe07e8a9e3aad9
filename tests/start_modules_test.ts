// What `tern serve` loads before it serves: the modules the CLI's entry reaches by static
// imports (`deno info`). Every module loaded costs the relay's process memory for as long as it
// runs (Deno keeps each module's source, its compiled form and its module record), so code that
// only other commands use is imported when that command runs.

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

interface InfoModule {
  specifier: string;
  dependencies?: { isDynamic?: boolean; code?: { specifier: string } }[];
}

/**
 * Modules reached from `entry` through static imports only: local ones by their path in the
 * repository, packages by their npm specifier (without version).
 */
async function staticGraph(entry: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [info.roots[0]];
  while (todo.length) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.isDynamic || !d.code) continue;
      if (d.code.specifier.startsWith("file:")) todo.push(d.code.specifier);
      else seen.add(d.code.specifier.replace(/@[^@/]+$/, ""));
    }
  }
  return new Set(
    [...seen].map((s) => s.startsWith(ROOT.href) ? s.slice(ROOT.href.length) : s),
  );
}

/** What `tern serve` loads before it serves: the CLI's entry and the serve command's module. */
async function serveGraph(): Promise<Set<string>> {
  const [cli, serve] = await Promise.all([
    staticGraph("src/cli/main.ts"),
    staticGraph("src/cli/commands/serve.ts"),
  ]);
  return new Set([...cli, ...serve]);
}

Deno.test("tern serve loads no other command's module", async () => {
  const graph = await serveGraph();
  assert.ok(graph.has("src/app/relay.ts"), "the graph holds the relay");
  const others = [...Deno.readDirSync(new URL("src/cli/commands/", ROOT))]
    .map((e) => `src/cli/commands/${e.name}`)
    .filter((p) => p.endsWith(".ts") && !p.endsWith("_test.ts") && !p.endsWith("/serve.ts"));
  assert.ok(others.includes("src/cli/commands/doctor.ts"));
  assert.deepEqual(others.filter((c) => graph.has(c)), []);
  // What only `tern doctor` uses stays out of the relay too.
  assert.ok(!graph.has("src/app/doctor.ts"));
});

Deno.test("tern serve loads the QR code encoder only when a page or the --dev banner needs it", async () => {
  const graph = await serveGraph();
  assert.ok(graph.has("npm:hono"), "the graph names packages");
  assert.ok(!graph.has("npm:uqr"));
});

// A dynamic import that never runs must cost `tern serve` nothing. By default `deno run` reads,
// before the program's first line, every module a statically analyzable `import("...")` reaches,
// and keeps their sources in native memory for the life of the process (the other commands,
// PostgreSQL, ACME, the QR code encoder: 1.3 MB RSS right after start, 65.7 -> 64.4 MB, median of
// 5 restarts). deno.json's "lazy-dynamic-imports" makes `deno run` read a module when its import
// runs. Seen in Deno's debug log, which names each file it fetches.
Deno.test("deno run with tern's configuration reads a dynamically imported module only when the import runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-lazy-import-" });
  try {
    await Deno.writeTextFile(`${dir}/late.ts`, "export const x = 42;\n");
    await Deno.writeTextFile(
      `${dir}/entry.ts`,
      [
        'if (Deno.args[0] === "load") console.log((await import("./late.ts")).x);',
        'console.log("started");',
      ].join("\n"),
    );
    const run = async (arg: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--log-level=debug",
          "--config",
          new URL("deno.json", ROOT).pathname,
          `${dir}/entry.ts`,
          arg,
        ],
        cwd: ROOT,
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    };
    const fetchedLate = /fetch[^\n]*late\.ts/i;
    // When the import runs, the log names the file (so the check below can see it at all).
    const used = await run("load");
    assert.equal(used.code, 0, used.stderr);
    assert.equal(used.stdout, "42\nstarted\n");
    assert.match(used.stderr, fetchedLate);
    // When it does not run, the file is never read.
    const idle = await run("skip");
    assert.equal(idle.code, 0, idle.stderr);
    assert.equal(idle.stdout, "started\n");
    assert.doesNotMatch(idle.stderr, fetchedLate);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
