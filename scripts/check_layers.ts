// Fails when an import in src/ breaks the layering rules (README "Architecture") or when the
// folders form an import cycle. Test files are exempt: they may wire real parts together.

import { walk } from "./_walk.ts";

const LAYERS: Record<string, number> = {
  "errors.ts": 0,
  "version.ts": 0,
  "gc.ts": 0,
  "quiet_collector.ts": 0,
  "malloc_trim.ts": 0,
  "build_info.json": 0,
  mime: 0,
  policy: 0,
  config: 1,
  log: 1,
  net: 1,
  events: 1,
  store: 1,
  metrics: 1,
  auth: 2,
  accounts: 2,
  settings: 2,
  mailbox: 2,
  delivery: 2,
  push: 2,
  discovery: 2,
  tasks: 2,
  federation: 2,
  turn: 2,
  acme: 2,
  smtp: 3,
  imap: 3,
  http: 3,
  admin: 3,
  iroh: 3,
  app: 4,
  cli: 4,
};

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|(?:^|\n)\s*import\s+["']([^"']+)["']/g;

const problems: string[] = [];
const edges = new Map<string, Set<string>>();

function unitOf(path: string): string | null {
  const m = /^src\/([^/]+)/.exec(path);
  return m ? m[1] : null;
}

for await (const file of walk("src")) {
  if (
    !/\.(ts|tsx)$/.test(file) || /_test\.tsx?$/.test(file) || file.includes("/testdata/") ||
    file.endsWith("store_contract.ts")
  ) continue;
  const from = unitOf(file)!;
  const text = await Deno.readTextFile(file);
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith(".")) continue;
    const target = new URL(spec, `file:///${file}`).pathname.slice(1);
    const to = unitOf(target);
    if (!to || to === from) continue;
    if (!(from in LAYERS) || !(to in LAYERS)) {
      problems.push(
        `${file}: folder "${
          !(from in LAYERS) ? from : to
        }" has no layer in scripts/check_layers.ts`,
      );
      continue;
    }
    const lf = LAYERS[from], lt = LAYERS[to];
    if (lt > lf) {
      problems.push(`${file}: layer ${lf} (${from}) must not import layer ${lt} (${to}): ${spec}`);
    }
    if (target.startsWith("src/store/sqlite/") && lf < 4) {
      problems.push(`${file}: only app/cli may use the SQLite store directly: ${spec}`);
    }
    if (target.startsWith("src/store/postgres/") && lf < 4) {
      problems.push(`${file}: only app/cli may use the PostgreSQL store directly: ${spec}`);
    }
    if (lf === 3 && lt === 2) {
      problems.push(
        `${file}: protocol edge ${from} must reach services through its backend interface, not ${to}: ${spec}`,
      );
    }
    if (lf === 0 && lt !== 0) problems.push(`${file}: pure module ${from} must not import ${to}`);
    if (!edges.has(from)) edges.set(from, new Set());
    edges.get(from)!.add(to);
  }
}

// Folder-level cycles.
const state = new Map<string, number>();
const stack: string[] = [];
function visit(n: string) {
  state.set(n, 1);
  stack.push(n);
  for (const m of edges.get(n) ?? []) {
    if (state.get(m) === 1) {
      problems.push(`import cycle: ${[...stack.slice(stack.indexOf(m)), m].join(" -> ")}`);
    } else if (!state.has(m)) visit(m);
  }
  stack.pop();
  state.set(n, 2);
}
for (const n of edges.keys()) if (!state.has(n)) visit(n);

if (problems.length > 0) {
  console.error(`check_layers: ${problems.length} problem(s)\n  ${problems.join("\n  ")}`);
  Deno.exit(1);
}
console.log("check_layers: ok");
