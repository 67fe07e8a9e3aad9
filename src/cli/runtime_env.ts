// How the tern process is best run: the environment the systemd unit sets (tern install), the
// V8 flags `deno compile` bakes into the binary (scripts/compile.ts), and what the tests and the
// benchmark start tern with (tests/support/tern_process.ts), so that they measure what is shipped.
//
// --max-semi-space-size=4 (MiB): V8 sizes its young generation from the machine's memory; on
// 24 GB it grows to 48 MiB under a burst of connections (10 000 TLS logins) and never gives it
// back, so an idle relay kept that much. 4 MiB semi-spaces (young generation at most 8 MiB): with
// 2 000 idle TLS IMAP connections, 186 MB RSS instead of 232 MB (2 MiB: 182 MB). Scavenges are
// more frequent but each one costs what survives, which per mail transaction is little.
// MALLOC_ARENA_MAX=2: fewer glibc malloc arenas for the runtime's threads (10 000 idle IMAP
// connections: 337 MB RSS instead of 390 MB, measured when it was introduced).
// --expose-gc: for releaseStartupGarbage() below, once, when the relay has started, and for the
// quiet collector after bursts (src/quiet_collector.ts).
// --no-memory-pool-share-memory-on-teardown: an isolate that ends (a scrypt worker, a store
// thread retired after idle) gives its heap pages back to the system at once. By default V8 moves
// them to a process-wide pool for other isolates to reuse, to be released by a task some seconds
// later that, here, did not run: they stayed until a new Worker took them. Two Workers started
// and ended in a plain script (runtime_env_test.ts): V8 pages 2.4 MB before, 21.7 while they ran,
// 23.0 once their threads had ended, 5.2 with the flag; still 16 MB without it 7 s later. The
// relay after 1250 just-in-time sign-ups, RSS 10 / 30 s after the last one, with the quiet
// collector: 109.9 / 96.3 MB instead of 121.8 / 101.2 (one run each). A Worker started later
// maps fresh pages instead of pooled ones: a few page faults more in a start of some tens of ms.
// DENO_NO_UPDATE_CHECK=1: `deno run` (the sources, the bundle) otherwise looks up dl.deno.land
// at every start to see whether a newer Deno exists: a DNS query and an HTTPS request from the
// relay that nobody asked for, and 1.0-1.6 MB more RSS right after start (66.1-66.7 MB instead
// of 67.7, `deno run` of the sources, three restarts each). A compiled binary never checks.

import { collectGarbage } from "../gc.ts";
import { libcTrim } from "../malloc_trim.ts";

export const V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=4",
  "--expose-gc",
  "--no-memory-pool-share-memory-on-teardown",
];

/** Environment for a tern process (`DENO_V8_FLAGS` is read by `deno run`). */
export const RUNTIME_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  DENO_V8_FLAGS: V8_FLAGS.join(","),
  DENO_NO_UPDATE_CHECK: "1",
};

/**
 * Once the listeners are up: a full, memory-reducing collection of what starting left behind
 * (configuration, migrations, certificate generation, module evaluation). V8's memory reducer
 * does the same by itself once the process has been quiet for a while (about 30 s after start,
 * 4 MB less RSS); doing it here gives it back at once: 5 to 6 MB less RSS right after start,
 * for a pause of some tens of ms before the first client is served. Without --expose-gc (a
 * plain `deno run`) nothing happens.
 */
export function releaseStartupGarbage(): void {
  collectGarbage();
  const { rss, heapTotal } = Deno.memoryUsage();
  if (rss - heapTotal > NATIVE_TRIM_BYTES) libcTrim()?.();
}

/**
 * Native memory (RSS outside V8's heap) above which the start left freed memory worth handing
 * back. When V8 compiles the code without its code cache (a new build's first start, and every
 * start of a compiled binary whose cache file is gone, as under the unit's PrivateTmp=yes), the
 * compilation uses and frees some 45 MB of glibc heap that glibc keeps: dist/tern.js served 105
 * MB 2 s after the first IMAPS greeting, 63 MB with malloc_trim (2026-12-04, three first starts
 * each). A start with the cache is at 45-55 MB native and does not need it; there, loading the FFI
 * that calls malloc_trim costs more than it gives back (57.0 -> 58.8 MB for the bundle, 64.8 ->
 * 66.2 from the sources, three restarts each). glibc's MALLOC_TRIM_THRESHOLD_ does not help (the
 * freed memory is not at the top of the heap: 110 vs 114 MB on a first start).
 */
const NATIVE_TRIM_BYTES = 70 * 1024 * 1024;
