// The entry of a store thread in the one-file bundle. scripts/compile.ts bundles this module on
// its own (the store modules, node:sqlite, node:fs: about 90 KB) and embeds that text in
// dist/tern.js, which starts its store threads from it (store_thread.ts, entryUrl). A thread
// started from the bundle itself would evaluate the whole relay first: every static node:
// import (tls, http, zlib, dgram…) and 3 MB of parsed source, about 13 MB more per thread.
// From the sources (and `deno compile`) the threads start from main.ts instead, which loads
// nothing but this module's own import below (main.ts does the same as here).

// Requests can arrive while the import below is still loading: a message with no handler yet
// would be lost and its caller wait forever, so they are kept until the thread takes them over.
const early: MessageEvent[] = [];
self.onmessage = (e: MessageEvent) => early.push(e);
const { runStoreThread } = await import("./worker.ts");
runStoreThread(early);
