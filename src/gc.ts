// V8's forced garbage collection, exposed by --expose-gc (set for the shipped binary, the systemd
// unit and the tests' tern processes: src/cli/runtime_env.ts). A full, memory-reducing collection
// is what gives V8's spare pages back; without --expose-gc (a plain `deno run`) there is none.

export type Gc = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

/** V8's gc() when exposed, else null. */
export function exposedGc(): Gc | null {
  return (globalThis as { gc?: Gc }).gc ?? null;
}

/** One full, memory-reducing collection now; false when there is no gc to call. */
export function collectGarbage(gc: Gc | null = exposedGc()): boolean {
  if (!gc) return false;
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return true;
}
