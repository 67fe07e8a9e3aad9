// Small helpers for the benchmark: timing, percentiles, process memory from /proc.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

/** Nearest-rank percentile of an unsorted list (p in 0..100); NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Runs `fn` for every item with at most `limit` in flight; results in input order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface Mem {
  /** Resident set size, KiB (summed over processes: shared pages counted once per process). */
  rssKb: number;
  /** Proportional set size, KiB (shared pages divided among the processes sharing them). */
  pssKb: number;
  processes: number;
}

function readField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Memory of one process, or null when it is gone. */
export function procMem(pid: number): Mem | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    let pss = 0;
    try {
      pss = readField(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`), "Pss");
    } catch {
      // kernel without smaps_rollup: leave 0
    }
    return { rssKb: readField(status, "VmRSS"), pssKb: pss, processes: 1 };
  } catch {
    return null;
  }
}

/** pid → parent pid for every process in /proc. */
function parentMap(): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      // "pid (comm) state ppid …" — comm may contain spaces and parentheses
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      m.set(Number(e.name), Number(rest[1]));
    } catch {
      // exited meanwhile
    }
  }
  return m;
}

/** The given roots and all their descendants. */
export function processTree(roots: number[]): number[] {
  const parents = parentMap();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const stack = roots.filter((r) => parents.has(r));
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** Memory summed over the process trees under `roots`. */
export function treeMem(roots: number[]): Mem {
  const sum: Mem = { rssKb: 0, pssKb: 0, processes: 0 };
  for (const pid of processTree(roots)) {
    const m = procMem(pid);
    if (!m) continue;
    sum.rssKb += m.rssKb;
    sum.pssKb += m.pssKb;
    sum.processes++;
  }
  return sum;
}

/** Raises this process's open-file limit (children inherit it). Returns the soft limit now. */
export async function raiseNofile(want: number): Promise<number> {
  try {
    await new Deno.Command("prlimit", {
      args: ["--pid", String(Deno.pid), `--nofile=${want}:${want}`],
      stdout: "null",
      stderr: "null",
    }).output();
  } catch {
    // prlimit missing
  }
  const limits = Deno.readTextFileSync(`/proc/${Deno.pid}/limits`);
  const m = /^Max open files\s+(\d+)/m.exec(limits);
  return m ? Number(m[1]) : 1024;
}

export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A user name tern accepts for JIT accounts: exactly 9 characters of [a-z0-9]. */
export function userName(prefix: string, i: number): string {
  return prefix + String(i).padStart(9 - prefix.length, "0");
}

let clkTck = 100;
try {
  const r = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" })
    .outputSync();
  clkTck = Number(new TextDecoder().decode(r.stdout).trim()) || 100;
} catch {
  // assume 100
}

/** utime, stime, cutime, cstime of one process in ms, or null when it is gone. */
function cpuTimes(pid: number): number[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // after "pid (comm) ": state=0 ppid=1 … utime=11 stime=12 cutime=13 cstime=14
    return [11, 12, 13, 14].map((i) => (Number(f[i]) * 1000) / clkTck);
  } catch {
    return null;
  }
}

/** CPU time (ms) used by one process's main thread (its thread id is the process id). */
export function mainThreadCpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck;
  } catch {
    return NaN; // ended meanwhile
  }
}

/**
 * CPU time (ms) used by the process trees under `roots`: every live process's own time plus the
 * time of children it has reaped, so short-lived workers are counted once they exit.
 */
export function treeCpuMs(roots: number[]): number {
  let total = 0;
  for (const pid of processTree(roots)) {
    const t = cpuTimes(pid);
    if (t) total += t[0] + t[1] + t[2] + t[3];
  }
  return total;
}

/**
 * System calls made so far by the live processes of the tree (/proc/PID/io syscr + syscw; the
 * counts of processes that already ended are lost). Unlike CPU time, not inflated by a loaded
 * machine: a repeatable measure of per-message I/O work.
 */
export function treeSyscalls(roots: number[]): { reads: number; writes: number } {
  let reads = 0, writes = 0;
  for (const pid of processTree(roots)) {
    let text = "";
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/io`);
    } catch {
      continue; // ended meanwhile, or not ours to read
    }
    reads += Number(/^syscr:\s*(\d+)/m.exec(text)?.[1] ?? 0);
    writes += Number(/^syscw:\s*(\d+)/m.exec(text)?.[1] ?? 0);
  }
  return { reads, writes };
}

/** CPU time (ms) this benchmark process used itself (without its children). */
export function selfCpuMs(): number {
  const t = cpuTimes(Deno.pid);
  return t ? t[0] + t[1] : 0;
}

/** The machine, for the results and the chart's footer. */
export function hostInfo(): { cpuModel: string; cpus: number; memGb: number; kernel: string } {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(read("/proc/cpuinfo"))?.[1].trim() ?? "?";
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(read("/proc/meminfo"))?.[1] ?? 0);
  return {
    cpuModel,
    cpus: navigator.hardwareConcurrency,
    memGb: Math.round(memKb / 1024 / 1024),
    kernel: read("/proc/sys/kernel/osrelease").trim(),
  };
}

/** The first line a command prints (its version), or "" when it cannot run. */
export async function versionOf(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args);
    return (r.stdout || r.stderr).trim().split("\n")[0];
  } catch {
    return "";
  }
}

export function loadavg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}
