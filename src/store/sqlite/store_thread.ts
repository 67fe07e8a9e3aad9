// The main thread's handle on one store thread (writer or reader): requests with ids, answers
// as promises, errors rebuilt (wire_error.ts). From the sources (and `deno test`) threads start
// from the program's entry module, which dispatches on the worker's name before anything else
// (main.ts); the one-file bundle carries the store thread's own small bundle as text and starts
// them from that (thread_main.ts says why).

import type { FromThread, ToThread } from "./worker.ts";
import { fromWire } from "./wire_error.ts";

export const THREAD_PREFIX = "tern-store-";

/** Set by scripts/compile.ts at the top of dist/tern.js: the bundled thread_main.ts. */
const BUNDLED_SOURCE = "ternStoreThreadSource";
let bundledUrl: string | undefined;

/**
 * Where store threads start: the embedded thread bundle (as a blob: URL, made once and kept
 * for the life of the process) when running from dist/tern.js; otherwise the program's entry
 * URL recorded by main.ts, or main.ts itself when not started through it.
 */
export function entryUrl(): string {
  const g = globalThis as { ternEntry?: string; [BUNDLED_SOURCE]?: string };
  const bundled = g[BUNDLED_SOURCE];
  if (typeof bundled === "string") {
    bundledUrl ??= URL.createObjectURL(new Blob([bundled], { type: "text/javascript" }));
    return bundledUrl;
  }
  return g.ternEntry ?? new URL("../../../main.ts", import.meta.url).href;
}

type Request = ToThread extends infer M ? M extends { id: number } ? Omit<M, "id"> : never
  : never;

export class StoreThread {
  readonly name: string;
  #worker: Worker;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  #seq = 0;
  #dead: Error | null = null;

  private constructor(name: string) {
    this.name = name;
    this.#worker = new Worker(entryUrl(), { type: "module", name: THREAD_PREFIX + name });
    this.#worker.onmessage = (e: MessageEvent<FromThread>) => {
      const m = e.data;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.t === "ok") p.resolve(m.value);
      else p.reject(fromWire(m.error));
    };
    this.#worker.onerror = (e) => {
      // A thread that died (out of memory, a bug) fails what it was doing; never the process.
      e.preventDefault();
      this.#fail(new Error(`store ${name} thread failed: ${e.message}`));
    };
  }

  /** Starts the thread and opens its connection (the writer migrates first). */
  static async start(name: string, open: Omit<Extract<ToThread, { t: "open" }>, "id" | "t">) {
    const thread = new StoreThread(name);
    try {
      await thread.request({ t: "open", ...open });
    } catch (err) {
      thread.terminate();
      throw err;
    }
    return thread;
  }

  get alive(): boolean {
    return this.#dead === null;
  }

  request(m: Request): Promise<unknown> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...m, id } as ToThread);
    });
  }

  #fail(err: Error) {
    this.#dead ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#worker.terminate();
  }

  /** Closes the connection (checkpointing the WAL), then ends the thread. */
  async close(): Promise<void> {
    if (this.#dead) return;
    try {
      await this.request({ t: "close" });
    } finally {
      this.#fail(new Error(`store ${this.name} thread closed`));
    }
  }

  terminate(): void {
    this.#fail(new Error(`store ${this.name} thread stopped`));
  }
}
