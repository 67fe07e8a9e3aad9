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
// --expose-gc: for releaseStartupGarbage() below, once, when the relay has started.
// DENO_NO_UPDATE_CHECK=1: `deno run` (the sources, the bundle) otherwise looks up dl.deno.land
// at every start to see whether a newer Deno exists: a DNS query and an HTTPS request from the
// relay that nobody asked for, and 1.0-1.6 MB more RSS right after start (66.1-66.7 MB instead
// of 67.7, `deno run` of the sources, three restarts each). A compiled binary never checks.

import { collectGarbage } from "../gc.ts";

export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=4", "--expose-gc"];

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
}
