// tern migrate: applies pending database migrations and reports the schema version.

import { databasePath, ensureDataDir } from "../../app/data_dir.ts";
import { MIGRATIONS, openSqliteStore } from "../../store/sqlite/mod.ts";
import { configFrom, parse } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern migrate";

export function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, {});
  const config = configFrom(values, io);
  ensureDataDir(config.dataDir);
  const store = openSqliteStore(databasePath(config.dataDir));
  try {
    const rows = store.db.all<{ name: string }>(
      "SELECT name FROM schema_migrations ORDER BY version",
    );
    io.out(
      `schema up to date: ${rows.length}/${MIGRATIONS.length} migration(s) applied (${
        rows.at(-1)?.name
      })`,
    );
  } finally {
    store.close();
  }
  return Promise.resolve(0);
}
