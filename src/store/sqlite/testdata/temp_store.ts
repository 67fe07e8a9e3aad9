// A SQLite store on a fresh file (with its bodies directory) for tests, removed on close.

import { openSqliteStore, type SqliteStore, startSqliteStore } from "../mod.ts";

/** Threaded stores use their reader thread for heavy reads however small the database. */
export async function tempStore(threaded: boolean): Promise<SqliteStore> {
  const dir = await Deno.makeTempDir({ prefix: "tern-store-" });
  const store = threaded
    ? await startSqliteStore(`${dir}/t.db`, { tinyBytes: 0 })
    : openSqliteStore(`${dir}/t.db`);
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      await close();
      await Deno.remove(dir, { recursive: true });
    },
  });
}
