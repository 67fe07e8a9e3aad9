// Where tern's time went: reads the V8 CPU profiles (.cpuprofile) that `deno run --cpu-prof`
// writes at exit (one per thread: the main thread and each store thread) and prints, per thread,
// the functions with the most self time, the functions with the most inclusive time, and the
// share of each source file.
//
//   scripts/deno run -A scripts/bench/profile.ts DIR [--top N]

import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time, ms. */
  totalMs: number;
  /** Time not spent idle (program, GC and JavaScript), ms. */
  busyMs: number;
  self: { name: string; ms: number }[];
  inclusive: { name: string; ms: number }[];
  files: { file: string; ms: number }[];
}

const ROOT = new URL("../../", import.meta.url).href;

/** A short, stable name for a source location. */
function where(url: string): string {
  if (!url) return "";
  let u = url.startsWith(ROOT) ? url.slice(ROOT.length) : url;
  const nm = u.indexOf("node_modules/");
  if (nm >= 0) {
    // …/node_modules/.deno/pkg@1.2.3/node_modules/pkg/file.js → npm:pkg/file.js
    const tail = u.slice(u.lastIndexOf("node_modules/") + "node_modules/".length);
    u = `npm:${tail}`;
  }
  return u;
}

function key(f: CallFrame): string {
  const name = f.functionName || "(anonymous)";
  const at = where(f.url);
  return at ? `${name} ${at}:${f.lineNumber + 1}` : name;
}

export function summarize(p: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Self time per node: each sample lasts until the next one (timeDeltas are µs before it).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const selfBy = new Map<string, number>();
  const fileBy = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const k = key(n.callFrame);
    if (n.callFrame.functionName === "(idle)") idleUs += us;
    selfBy.set(k, (selfBy.get(k) ?? 0) + us);
    const f = where(n.callFrame.url) || n.callFrame.functionName || "(native)";
    fileBy.set(f, (fileBy.get(f) ?? 0) + us);
  }
  // Inclusive time: a node's subtree, counted once per function on any one stack (recursion).
  const parents = new Set<number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parents.add(c);
  const subtree = new Map<number, number>();
  const total = (id: number): number => {
    const known = subtree.get(id);
    if (known !== undefined) return known;
    const n = byId.get(id)!;
    let t = selfUs.get(id) ?? 0;
    for (const c of n.children ?? []) t += total(c);
    subtree.set(id, t);
    return t;
  };
  const inclBy = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>) => {
    const n = byId.get(id)!;
    const k = key(n.callFrame);
    const fresh = !onStack.has(k);
    if (fresh) {
      inclBy.set(k, (inclBy.get(k) ?? 0) + total(id));
      onStack.add(k);
    }
    for (const c of n.children ?? []) walk(c, onStack);
    if (fresh) onStack.delete(k);
  };
  for (const n of p.nodes) if (!parents.has(n.id)) walk(n.id, new Set());
  const sorted = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({
      name,
      ms: us / 1000,
    }));
  selfBy.delete("(idle)");
  fileBy.delete("(idle)");
  return {
    totalMs: totalUs / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    self: sorted(selfBy),
    inclusive: sorted(inclBy).filter((x) => !/^\((root|idle|program)\)/.test(x.name)),
    files: sorted(fileBy).map((x) => ({ file: x.name, ms: x.ms })),
  };
}

function render(name: string, s: ProfileSummary): string {
  const pct = (ms: number) => `${((100 * ms) / Math.max(1, s.busyMs)).toFixed(1).padStart(5)}%`;
  const lines = [
    `== ${name}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(s.busyMs / 1000).toFixed(1)} s ` +
    "busy (percentages are of busy time)",
    "-- self time",
    ...s.self.map((x) => `${pct(x.ms)} ${x.ms.toFixed(0).padStart(7)} ms  ${x.name}`),
    "-- inclusive time",
    ...s.inclusive.map((x) => `${pct(x.ms)} ${x.ms.toFixed(0).padStart(7)} ms  ${x.name}`),
    "-- self time by file",
    ...s.files.map((x) => `${pct(x.ms)} ${x.ms.toFixed(0).padStart(7)} ms  ${x.file}`),
  ];
  return lines.join("\n");
}

/** Summaries of every .cpuprofile in `dir`, biggest thread first. */
export async function summarizeProfiles(dir: string, top = 25): Promise<string> {
  const out: [string, ProfileSummary][] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".cpuprofile")) continue;
    const p = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}`)) as CpuProfile;
    out.push([e.name, summarize(p, top)]);
  }
  if (!out.length) return `cpu profiles: none in ${dir}`;
  out.sort((a, b) => b[1].busyMs - a[1].busyMs);
  return out.map(([n, s]) => render(`${dir}/${n}`, s)).join("\n\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { top: { type: "string" } },
  });
  if (!positionals[0]) {
    console.error("usage: deno run -A scripts/bench/profile.ts DIR [--top N]");
    Deno.exit(2);
  }
  console.log(await summarizeProfiles(positionals[0], Number(values.top ?? 25)));
}
