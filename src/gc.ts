// V8's forced garbage collection, exposed by --expose-gc (set for the shipped binary, the systemd
// unit and the tests' tern processes: src/cli/runtime_env.ts). A full, memory-reducing collection
// is what gives V8's spare pages back; without --expose-gc (a plain `deno run`) there is none.

export type Gc = (
  options:
    | { type: "major"; execution: "sync"; flavor: "last-resort" }
    | { type: "major"; execution: "async" },
) => void;

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

/**
 * Native memory that V8 cannot see, counted by hand. Some node:crypto objects in Deno (the
 * KeyObjects of a TLS key exchange) hold native memory that V8 does not count in its heap, so it
 * is freed only at V8's next full collection, which a small heap does not call for: a burst of
 * handshakes piled it up by the megabyte. Once `add` has counted `threshold` bytes, one full
 * collection is asked for with `execution: "async"`: V8 runs it from a task of its own after the
 * current work, not inside the caller (a handshake). It pauses the main thread as V8's own full
 * collections do (about 30 ms with a 10 MB heap, measured in a loop of key exchanges). Without
 * --expose-gc it only counts.
 */
export class NativeGarbage {
  #pending = 0;
  #counted = 0;
  #collections = 0;
  constructor(readonly threshold: number, private readonly gc: () => Gc | null = exposedGc) {}

  add(bytes: number): void {
    this.#pending += bytes;
    this.#counted += bytes;
    if (this.#pending < this.threshold) return;
    this.#pending = 0;
    const gc = this.gc();
    if (!gc) return;
    gc({ type: "major", execution: "async" });
    this.#collections++;
  }

  /** Bytes counted so far. */
  get counted(): number {
    return this.#counted;
  }

  /** Collections asked for so far. */
  get collections(): number {
    return this.#collections;
  }
}
