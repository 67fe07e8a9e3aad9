// tern migrate: applies pending database migrations, then the data steps of an upgrade (large
// bodies out of the database into files, a rebuild for incremental vacuum) with progress, and
// reports the schema version. Interrupting it is safe: the next run (or `serve`) resumes.

import { databasePath, ensureDataDir } from "../../app/data_dir.ts";
import { MIGRATIONS, openSqliteStore } from "../../store/sqlite/mod.ts";
import { configFrom, parse } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern migrate";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, {});
  const config = configFrom(values, io);
  ensureDataDir(config.dataDir);
  const store = openSqliteStore(databasePath(config.dataDir));
  try {
    const r = await store.migrateData({
      vacuum: "always",
      onProgress(p) {
        io.out(
          p.step === "bodies"
            ? `moving large bodies to files: ${p.done}/${p.total}`
            : p.done === 0
            ? "rebuilding the database for incremental vacuum (VACUUM)…"
            : "rebuilt for incremental vacuum",
        );
      },
    });
    const rows = store.db.all<{ name: string }>(
      "SELECT name FROM schema_migrations ORDER BY version",
    );
    io.out(
      `schema up to date: ${rows.length}/${MIGRATIONS.length} migration(s) applied (${
        rows.at(-1)?.name
      })${r.bodiesMoved ? `, ${r.bodiesMoved} bodies moved to files` : ""}`,
    );
  } finally {
    await store.close();
  }
  return 0;
}
