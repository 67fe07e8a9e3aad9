// scrypt runs on a pool of Web Workers, one per core, so none of it touches the event loop.
// node:crypto's asynchronous scrypt is not enough in Deno: part of each run happens on the
// calling thread (measured: about 0.3-1 ms per run at N=2^10 and 10-14 ms at N=2^14), which
// under a burst of sign-ups adds up to stalls for every other session.
//
// The workers are self-contained: their code is a data: URL importing only node:crypto, so they
// start the same way from the sources, from the one-file bundle (dist/tern.js) and from tests,
// without the entry-URL dispatch the store's threads use. They start on demand and each one asks
// to be stopped after IDLE_MS without work (the timer runs in the worker: the main thread holds
// no timer, so short-lived processes and tests are not kept waiting); the main thread agrees
// only when it has given that worker nothing since, so no job is ever lost to a stop.
//
// A worker that has had no job for COLLECT_MS makes one memory-reducing collection of its own
// heap (gc() is there because the relay runs with --expose-gc, src/cli/runtime_env.ts; without
// it nothing happens). A burst of sign-ups leaves each worker's isolate full of garbage that V8
// would otherwise keep until the worker is stopped, IDLE_MS later. The collection runs on the
// worker's own low-priority thread (45-48 ms after 600 hashes, a loaded 2-core machine), once per
// idle spell: the next one waits for the next job. The relay 1 s after 1250 just-in-time
// sign-ups over IMAPS (two interleaved pairs): RSS 154.4 / 162.7 MB instead of 160.5 / 172.9,
// and 5 s after 122.6 / 122.6 instead of 128.3 / 131.6.
//
// Each worker lowers its own thread's scheduling priority (nice 10; Linux applies setpriority()
// to the one thread whose id it is given). The event loop that serves every session then always
// wins a core from a hash: on a 2-core relay a storm of sign-ups keeps both workers busy, and at
// equal priority the kernel shares the cores evenly between them and the event loop, so every
// other session's commands wait. Benchmark sign-up storm (1000 new clients, 50 in flight, 2 cores,
// other work on the machine; medians of 9 rounds, alternating): another session's NOOP p99
// 72.8 -> 29.1 ms, and the storm itself 8.0 -> 6.3 s (the logins between the hashes move on
// sooner). Hashes get whatever the sessions leave, which is all of it when they are idle. Where
// the thread id cannot be found (no /proc), the worker runs at normal priority and says why
// (ScryptPool.priority).

/** The nice value the workers give their own threads (0 is normal, 19 the lowest). */
export const WORKER_NICE = 10;

export interface ScryptJob {
  password: string;
  salt: Uint8Array;
  n: number;
  r: number;
  p: number;
  keyLen: number;
}

const IDLE_MS = 10_000;
/** An idle worker collects its garbage after this long without a job (once per idle spell). */
const COLLECT_MS = 500;

const workerSource = (idleMs: number, collectMs: number) => `
import { scryptSync } from "node:crypto";
import { setPriority } from "node:os";
try {
  const tid = Number(Deno.readLinkSync("/proc/thread-self").split("/").pop());
  setPriority(tid, ${WORKER_NICE});
  self.postMessage({ thread: tid });
} catch (err) {
  self.postMessage({ thread: null, why: String((err && err.message) || err) });
}
let timer;
let settle;
const arm = () => {
  clearTimeout(timer);
  clearTimeout(settle);
  timer = setTimeout(() => self.postMessage({ idle: true }), ${idleMs});
  settle = setTimeout(() => {
    if (typeof gc !== "function") return;
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    self.postMessage({ collected: true });
  }, ${collectMs});
};
self.onmessage = (e) => {
  const { id, password, salt, n, r, p, keyLen } = e.data;
  try {
    const key = scryptSync(password, salt, keyLen, { N: n, r, p, maxmem: 256 * n * r + (1 << 20) });
    self.postMessage({ id, key: new Uint8Array(key.buffer, key.byteOffset, key.byteLength) });
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
  arm();
};
arm();
`;

const dataUrl = (source: string) => `data:text/javascript;base64,${btoa(source)}`;

interface Pending {
  id: number;
  job: ScryptJob;
  resolve: (key: Uint8Array) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
  /** Has answered at least once (a worker failing before that means workers cannot run). */
  proven: boolean;
  /** Its thread id, once it lowered its priority. */
  thread: number | null;
}

export class ScryptPool {
  readonly size: number;
  #slots = new Set<Slot>();
  #queue: Pending[] = [];
  #nextId = 1;
  #started = 0;
  #done = 0;
  #collections = 0;
  /** Why workers cannot run here (set once; callers then compute on their own thread). */
  broken: string | null = null;
  /**
   * The thread ids of the workers alive that lowered their priority, and why the last one that
   * could not did not (null when none failed).
   */
  readonly priority: { threads: Set<number>; failure: string | null } = {
    threads: new Set(),
    failure: null,
  };

  #url: string;

  /**
   * `idleMs`: a worker without work this long is stopped; `collectMs`: one without work this long
   * collects its garbage; `workerSource` replaces the worker's code (tests of failing workers).
   */
  constructor(
    size: number,
    options: { idleMs?: number; collectMs?: number; workerSource?: string } = {},
  ) {
    this.size = Math.max(1, size);
    this.#url = dataUrl(
      options.workerSource ??
        workerSource(options.idleMs ?? IDLE_MS, options.collectMs ?? COLLECT_MS),
    );
  }

  run(job: ScryptJob): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, job, resolve, reject });
      this.#dispatch();
    });
  }

  /**
   * Jobs computing and waiting, workers alive and ever started, jobs answered by workers, and
   * the collections idle workers made.
   */
  stats(): {
    running: number;
    waiting: number;
    workers: number;
    started: number;
    done: number;
    collections: number;
  } {
    let running = 0;
    for (const s of this.#slots) if (s.current) running++;
    return {
      running,
      waiting: this.#queue.length,
      workers: this.#slots.size,
      started: this.#started,
      done: this.#done,
      collections: this.#collections,
    };
  }

  /** Stops every worker; jobs still waiting or running fail. */
  close(): void {
    for (const s of this.#slots) this.#drop(s, new Error("password pool closed"));
    for (const p of this.#queue.splice(0)) p.reject(new Error("password pool closed"));
  }

  #dispatch() {
    while (this.#queue.length) {
      let slot: Slot | undefined;
      for (const s of this.#slots) {
        if (!s.current) {
          slot = s;
          break;
        }
      }
      if (!slot && this.#slots.size < this.size) slot = this.#spawn() ?? undefined;
      if (!slot) {
        if (this.broken) {
          for (const p of this.#queue.splice(0)) p.reject(new Error(this.broken));
        }
        return;
      }
      const p = this.#queue.shift()!;
      slot.current = p;
      slot.worker.postMessage({ id: p.id, ...p.job });
    }
  }

  #spawn(): Slot | null {
    if (this.broken) return null;
    let worker: Worker;
    try {
      worker = new Worker(this.#url, { type: "module", name: "tern-scrypt" });
    } catch (err) {
      this.broken = `cannot start a scrypt worker: ${(err as Error).message}`;
      return null;
    }
    this.#started++;
    const slot: Slot = { worker, current: null, proven: false, thread: null };
    worker.onmessage = (e: MessageEvent) => {
      const m = e.data as {
        idle?: true;
        collected?: true;
        id?: number;
        key?: Uint8Array;
        error?: string;
        thread?: number | null;
        why?: string;
      };
      if (m.thread !== undefined) {
        if (m.thread === null) this.priority.failure = m.why ?? "unknown";
        else this.priority.threads.add(slot.thread = m.thread);
        return;
      }
      if (m.collected) {
        this.#collections++;
        return;
      }
      if (m.idle) {
        // Stop it only if nothing was handed to it since it counted its idle time.
        if (!slot.current) this.#drop(slot);
        return;
      }
      const p = slot.current;
      if (!p || p.id !== m.id) return;
      slot.current = null;
      slot.proven = true;
      this.#done++;
      if (m.key) p.resolve(m.key);
      else p.reject(new Error(`scrypt failed: ${m.error}`));
      this.#dispatch();
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      if (!slot.proven) this.broken = `scrypt worker failed to start: ${e.message}`;
      this.#drop(slot, new Error(this.broken ?? `scrypt worker failed: ${e.message}`));
      this.#dispatch();
    };
    this.#slots.add(slot);
    return slot;
  }

  #drop(slot: Slot, err?: Error) {
    if (!this.#slots.delete(slot)) return;
    if (slot.thread !== null) this.priority.threads.delete(slot.thread);
    slot.worker.terminate();
    if (slot.current) slot.current.reject(err ?? new Error("scrypt worker stopped"));
    slot.current = null;
  }
}
