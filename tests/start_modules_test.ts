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

/** Local modules reached from `entry` through static imports only. */
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
      if (!d.isDynamic && d.code?.specifier.startsWith("file:")) todo.push(d.code.specifier);
    }
  }
  return new Set([...seen].map((s) => s.slice(ROOT.href.length)));
}

Deno.test("the CLI's entry loads no command's module before that command runs", async () => {
  const graph = await staticGraph("src/cli/main.ts");
  const commands = [...Deno.readDirSync(new URL("src/cli/commands/", ROOT))]
    .map((e) => `src/cli/commands/${e.name}`)
    .filter((p) => p.endsWith(".ts") && !p.endsWith("_test.ts"));
  assert.ok(commands.includes("src/cli/commands/serve.ts"));
  assert.deepEqual(commands.filter((c) => graph.has(c)), []);
  // What only `tern doctor` uses stays out of the relay too.
  assert.ok(!graph.has("src/app/doctor.ts"));
});
