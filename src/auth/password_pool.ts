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

export interface ScryptJob {
  password: string;
  salt: Uint8Array;
  n: number;
  r: number;
  p: number;
  keyLen: number;
}

const IDLE_MS = 10_000;

const workerSource = (idleMs: number) => `
import { scryptSync } from "node:crypto";
let timer;
const arm = () => {
  clearTimeout(timer);
  timer = setTimeout(() => self.postMessage({ idle: true }), ${idleMs});
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
}

export class ScryptPool {
  readonly size: number;
  #slots = new Set<Slot>();
  #queue: Pending[] = [];
  #nextId = 1;
  #started = 0;
  #done = 0;
  /** Why workers cannot run here (set once; callers then compute on their own thread). */
  broken: string | null = null;

  #url: string;

  /** `workerSource` replaces the worker's code (tests of failing workers). */
  constructor(size: number, options: { idleMs?: number; workerSource?: string } = {}) {
    this.size = Math.max(1, size);
    this.#url = dataUrl(options.workerSource ?? workerSource(options.idleMs ?? IDLE_MS));
  }

  run(job: ScryptJob): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, job, resolve, reject });
      this.#dispatch();
    });
  }

  /** Jobs computing and waiting, workers alive and ever started, jobs answered by workers. */
  stats(): { running: number; waiting: number; workers: number; started: number; done: number } {
    let running = 0;
    for (const s of this.#slots) if (s.current) running++;
    return {
      running,
      waiting: this.#queue.length,
      workers: this.#slots.size,
      started: this.#started,
      done: this.#done,
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
    const slot: Slot = { worker, current: null, proven: false };
    worker.onmessage = (e: MessageEvent) => {
      const m = e.data as { idle?: true; id?: number; key?: Uint8Array; error?: string };
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
    slot.worker.terminate();
    if (slot.current) slot.current.reject(err ?? new Error("scrypt worker stopped"));
    slot.current = null;
  }
}
