// The main thread gives back what a burst of work left it, once the relay has gone quiet.
//
// Under a burst (a sign-up storm, thousands of logins) V8 grows the main isolate: the young
// generation to its 8 MiB cap (--max-semi-space-size=4, src/cli/runtime_env.ts), the old one
// to hold the burst's garbage until the next full collection. It shrinks them, and returns the
// spare pages, only in a memory-reducing collection, which its own memory reducer starts late
// or, on a relay that then just waits, not at all. Measured (1250 just-in-time sign-ups over
// IMAPS, then 3 s quiet; the main isolate's heap): 26.9 MB committed, 18.6 used; a plain full
// collection left 26.6 committed; a memory-reducing one left 13.6, and the relay's RSS went from
// 164 to 129 MB (the rest of the drop: pages V8 had kept pooled, and the other threads' own idle
// collections meanwhile).
//
// With it, the relay after 1250 just-in-time sign-ups over IMAPS (8 in flight, a loaded 2-core
// machine; RSS in MB 5 / 10 / 30 s after the last one; start 67-69): 143.1 / 121.8 / 101.2,
// without it 164.3-165.7 / 123.0-152.6 / 103.9-105.2 (three runs). The rest of what is left at
// 10 s is the scrypt workers (retired after 10 s idle, src/auth/password_pool.ts) and at 30 s
// the writer thread, kept for 5 minutes (src/store/sqlite/mod.ts).
//
// So: every `intervalMs` a look at what clients did (src/net/activity.ts: connections, data,
// HTTP requests, TURN datagrams, outbound deliveries' sockets). A whole interval without any, after the process grew by
// `minGrowthBytes` since it was last this small (or since the last collection), gets one
// memory-reducing collection. That pauses the main thread (80 ms for a 13 MB heap on an idle
// 2-core machine; 370 and 570 ms with a test suite loading both cores), which is why it waits for
// a quiet interval: a relay whose clients act is never paused by it. An idle relay is not
// collected again and again: after a collection the process must grow again first, and an idle
// one does not (a relay given two bursts of 300 sign-ups 25 s apart: one collection after each).
//
// Right after each collection, glibc's malloc_trim (src/malloc_trim.ts) hands back the free pages
// of the native side's malloc arenas: what connections that ended and the buffers the collection
// just freed leave there. glibc by itself returns only the top of the main thread's [heap], so a
// burst left it near its peak. 10 000 idle TLS IMAP connections of 1250
// accounts, then all closed (two interleaved pairs; RSS 12 s after the close): 97.6 / 99.6 MB
// ([heap] 17 / 23 MB) instead of 162.2 / 145.2 ([heap] 86 / 65). It takes 13 ms with 10 000
// connections open, and is only done when the collection is (quiet, and grown since).
//
// `gc` is V8's (src/gc.ts); without --expose-gc (a plain `deno run`) nothing is scheduled.

import { collectGarbage, exposedGc, type Gc } from "./gc.ts";
import { libcTrim, type Trim } from "./malloc_trim.ts";

/** One look per this many ms; a collection needs a whole one without socket activity. */
export const QUIET_INTERVAL_MS = 2_000;
/** The process must have grown this much since it was smallest (or last collected). */
export const QUIET_MIN_GROWTH_BYTES = 8 * 1024 * 1024;

export interface QuietCollectorOptions {
  /** A count that changes whenever there is work (sockets' data events and accepts). */
  activity: () => number;
  /** The process's size in bytes (default: RSS). */
  memory?: () => number;
  gc?: Gc | null;
  /** Gives free malloc memory back after each collection (default: glibc's malloc_trim). */
  trim?: Trim | null;
  intervalMs?: number;
  minGrowthBytes?: number;
  /** Tests: a fake clock. The default timer does not keep the process alive. */
  timers?: {
    every(fn: () => void, ms: number): unknown;
    cancel(id: unknown): void;
  };
}

export interface QuietCollector {
  /** Collections made so far. */
  readonly collections: number;
  stop(): void;
}

const realTimers = {
  every(fn: () => void, ms: number): unknown {
    const id = setInterval(fn, ms);
    Deno.unrefTimer(id);
    return id;
  },
  cancel(id: unknown) {
    clearInterval(id as number);
  },
};

export function quietCollector(options: QuietCollectorOptions): QuietCollector {
  const gc = options.gc === undefined ? exposedGc() : options.gc;
  // Looked up at the first collection, not here: loading the FFI at start costs 1.5-2 MB of RSS
  // (src/cli/runtime_env.ts) on a relay that may never need a trim.
  const trim = options.trim === undefined ? () => libcTrim()?.() : options.trim;
  const memory = options.memory ?? (() => Deno.memoryUsage().rss);
  const minGrowth = options.minGrowthBytes ?? QUIET_MIN_GROWTH_BYTES;
  const timers = options.timers ?? realTimers;
  let collections = 0;
  let lastActivity = options.activity();
  let low = memory();
  const tick = () => {
    const now = options.activity();
    if (now !== lastActivity) {
      lastActivity = now; // work during this interval: not quiet
      return;
    }
    const size = memory();
    if (size - low < minGrowth) {
      low = Math.min(low, size);
      return;
    }
    collectGarbage(gc);
    trim?.();
    collections++;
    low = memory();
  };
  const id = gc ? timers.every(tick, options.intervalMs ?? QUIET_INTERVAL_MS) : null;
  return {
    get collections() {
      return collections;
    },
    stop() {
      if (id !== null) timers.cancel(id);
    },
  };
}
