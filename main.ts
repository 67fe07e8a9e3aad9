// tern: a chatmail relay for Delta Chat. See README.md; `tern help` lists the commands.
//
// This module is also the entry of the store's threads when run from the sources or `deno
// compile` (Web Workers started from this file's URL; the bundle, dist/tern.js, starts them from
// an embedded bundle of src/store/sqlite/thread_main.ts instead): they are told apart by their
// name before anything else is loaded, so a thread loads only the store.

(globalThis as { ternEntry?: string }).ternEntry = import.meta.url;

if (self.name.startsWith("tern-store-")) {
  // Requests can arrive while the import below is still loading (on a first run under
  // `deno test` it type-checks for a minute): a message with no handler yet would be lost and
  // its caller wait forever, so they are kept until the thread takes them over.
  const early: MessageEvent[] = [];
  self.onmessage = (e: MessageEvent) => early.push(e);
  const { runStoreThread } = await import("./src/store/sqlite/worker.ts");
  runStoreThread(early);
} else if (import.meta.main) {
  const { runCli } = await import("./src/cli/main.ts");
  Deno.exit(await runCli(Deno.args));
}
