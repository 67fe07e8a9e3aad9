// tern migrate: applies pending database migrations, then the data steps of an upgrade (large
// bodies out of the database into files, a rebuild for incremental vacuum) with progress, and
// reports the schema version. Interrupting it is safe: the next run (or `serve`) resumes. With
// store = "postgres" it applies the PostgreSQL migrations.

import { databasePath, lockDataDir } from "../../app/data_dir.ts";
import { MIGRATIONS, openSqliteStore } from "../../store/sqlite/mod.ts";
import { configFrom, parse } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern migrate";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, {});
  const config = configFrom(values, io);
  if (config.store === "postgres") {
    // Loaded here, not at start: every command (serve too) would carry the PostgreSQL client.
    const { PG_MIGRATIONS, startPostgresStore } = await import("../../store/postgres/mod.ts");
    // Connecting applies pending migrations (one instance at a time); no data steps there.
    const pg = await startPostgresStore(config.databaseUrl, { name: "tern migrate", poolSize: 1 });
    try {
      const rows = await pg.sql<{ name: string }[]>`
        SELECT name FROM schema_migrations ORDER BY version`;
      io.out(
        `schema up to date: ${rows.length}/${PG_MIGRATIONS.length} migration(s) applied (${
          rows.at(-1)?.name
        }) in ${pg.where}`,
      );
    } finally {
      await pg.close();
    }
    return 0;
  }
  // Not under a running relay (an older one would go on with a schema it does not know).
  const lock = lockDataDir(config.dataDir);
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
    lock.close();
  }
  return 0;
}
