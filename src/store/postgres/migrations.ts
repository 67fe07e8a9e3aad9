// PostgreSQL migrations: numbered SQL files embedded in the module graph (the binary and the
// bundle carry them), checked as SQLite's are (store/sqlite/db.ts): a checksum per applied file
// (an edited, already-applied migration stops start-up) and refusal of a database that a newer
// tern migrated. Several instances may start at once: a transaction-scoped advisory lock lets
// one migrate while the others wait, then find nothing left to do.

import m0001 from "../../../migrations/postgres/0001_init.sql" with { type: "text" };
import m0002 from "../../../migrations/postgres/0002_imap_scale.sql" with { type: "text" };
import m0003 from "../../../migrations/postgres/0003_queue.sql" with { type: "text" };
import m0004 from "../../../migrations/postgres/0004_queue_claims.sql" with { type: "text" };
import { createHash } from "node:crypto";
import type { Sql } from "./connection.ts";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const PG_MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "0001_init.sql", sql: m0001 },
  { version: 2, name: "0002_imap_scale.sql", sql: m0002 },
  { version: 3, name: "0003_queue.sql", sql: m0003 },
  { version: 4, name: "0004_queue_claims.sql", sql: m0004 },
];

export class PgMigrationError extends Error {
  constructor(message: string) {
    super(message);
    // The same name as SQLite's: callers (the CLI) treat both alike.
    this.name = "MigrationError";
  }
}

/** Key of the advisory lock held while migrating (any constant; "tern" in ASCII). */
const MIGRATE_LOCK = 0x7465726e;

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Applies what is missing; returns the versions applied now. `where` names the database. */
export async function migrate(
  sql: Sql,
  where: string,
  migrations: readonly Migration[] = PG_MIGRATIONS,
  now = Date.now(),
): Promise<number[]> {
  // One transaction (PostgreSQL's DDL is transactional): all of it applies, or none.
  return await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version bigint PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,
      applied_at bigint NOT NULL)`;
    const applied = await tx<{ version: number; name: string; sha256: string }[]>`
      SELECT version, name, sha256 FROM schema_migrations ORDER BY version`;
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const a of applied) {
      const m = known.get(a.version);
      if (!m) {
        throw new PgMigrationError(
          `Cannot open database ${where}: it has migration ${a.name}, which this version of tern does not know (a newer tern wrote it)`,
        );
      }
      const sum = sha256(m.sql);
      if (sum !== a.sha256) {
        throw new PgMigrationError(
          `Cannot open database ${where}: migration ${m.name} was changed after it was applied (applied sha256 ${a.sha256}, now ${sum})`,
        );
      }
    }
    const done = new Set(applied.map((a) => a.version));
    const ran: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      // Several statements in one simple-protocol message (no parameters).
      await tx.unsafe(m.sql).simple();
      await tx`INSERT INTO schema_migrations (version, name, sha256, applied_at)
        VALUES (${m.version}, ${m.name}, ${sha256(m.sql)}, ${now})`;
      ran.push(m.version);
    }
    return ran;
  });
}

/** Names of the applied migrations, in order (`tern migrate` prints them). */
export async function appliedMigrations(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`SELECT name FROM schema_migrations ORDER BY version`;
  return rows.map((r) => r.name);
}
