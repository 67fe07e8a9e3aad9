// SQLite implementation of the store (node:sqlite, WAL). The only module that knows SQL.

import type { Store } from "../types.ts";
import { Db, MigrationError } from "./db.ts";
import { MIGRATIONS } from "./migrations.ts";
import type { Migration } from "./migrations.ts";
import { accountStore } from "./account_store.ts";
import { mailStore } from "./mail_store.ts";
import { mailQueries } from "./mail_queries.ts";
import { miscStore } from "./misc_store.ts";
import { queueStore } from "./queue_store.ts";

export { Db, MigrationError, MIGRATIONS };
export type { Migration };

export interface SqliteStoreOptions {
  migrations?: readonly Migration[];
  now?: () => number;
}

/** Opens (creating if needed) and migrates the database; ":memory:" for tests. */
export function openSqliteStore(
  path: string,
  options: SqliteStoreOptions = {},
): Store & { db: Db } {
  const db = new Db(path);
  try {
    db.migrate(options.migrations ?? MIGRATIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  const parts = {
    ...accountStore(db),
    ...mailStore(db, options.now),
    ...mailQueries(db),
    ...miscStore(db),
    ...queueStore(db),
  };
  // Every operation answers through a promise, also when it fails synchronously.
  const store: Record<string, unknown> = {};
  for (const [k, fn] of Object.entries(parts)) {
    store[k] = (...args: unknown[]) => {
      try {
        return Promise.resolve((fn as (...a: unknown[]) => unknown)(...args));
      } catch (err) {
        return Promise.reject(err);
      }
    };
  }
  return Object.assign(store as unknown as Store, {
    db,
    backup(path: string) {
      db.raw.exec(`VACUUM INTO '${path.replaceAll("'", "''")}'`);
      return Promise.resolve();
    },
    close() {
      db.close();
    },
  });
}
