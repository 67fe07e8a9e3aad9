// tern migrate-store --to postgres://…: copies this relay's SQLite store (tern.db and the body
// files in data_dir) into an empty PostgreSQL database, with progress (items copied of total,
// rate, time left), then verifies row counts, counters and every body's SHA-256. Stop the relay
// first. Interrupting it is safe: running it again resumes the copy. Afterwards set
// store = "postgres" and database_url in tern.toml (README "Growing beyond one machine").

import { join } from "node:path";
import { existsSync } from "node:fs";
import { databasePath, lockDataDir } from "../../app/data_dir.ts";
import type { ImportProgress } from "../../store/postgres/mod.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern migrate-store --to postgres://USER:PASSWORD@HOST/DB";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { to: { type: "string" }, slice: { type: "string" } });
  const to = String(values.to ?? "");
  if (!/^postgres(ql)?:\/\/\S+$/i.test(to) || !URL.canParse(to)) {
    throw new UsageError('migrate-store: expected --to "postgres://user:password@host:5432/db"');
  }
  const slice = values.slice === undefined ? undefined : Number(values.slice);
  if (slice !== undefined && (!Number.isSafeInteger(slice) || slice < 1)) {
    throw new UsageError("migrate-store: --slice expects a positive number of rows");
  }
  const config = configFrom(values, io);
  const path = databasePath(config.dataDir);
  if (!existsSync(path)) {
    io.err(`migrate-store: no SQLite store at ${path}`);
    return 1;
  }
  // The relay must be stopped: what it writes meanwhile would not be copied.
  const lock = lockDataDir(config.dataDir);
  // Loaded here, not at start: every command (serve too) would carry the PostgreSQL client.
  const { ImportError, importSqlite, startPostgresStore } = await import(
    "../../store/postgres/mod.ts"
  );
  const store = await startPostgresStore(to, { name: "tern migrate-store", poolSize: 2 });
  io.out(`copying ${path} into ${store.where}`);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const t0 = performance.now();
  let shown = 0;
  let phase = "";
  const progress = (p: ImportProgress) => {
    const t = performance.now();
    const finished = p.done === p.total;
    if (p.phase === phase && t - shown < 1000 && !finished) return;
    if (p.phase !== phase) phase = p.phase;
    shown = t;
    const rate = p.done / Math.max(0.001, (t - t0) / 1000);
    const left = rate > 0 ? Math.ceil((p.total - p.done) / rate) : 0;
    io.out(
      `${p.phase === "copy" ? "copied" : "verified"} ${p.done}/${p.total} ${
        p.phase === "copy" ? `rows (${p.table})` : "bodies"
      }, ${Math.round(rate)}/s, ${left} s left`,
    );
  };
  try {
    const r = await importSqlite({
      sqlitePath: path,
      bodiesDir: join(config.dataDir, "bodies"),
      store,
      slice,
      onProgress: progress,
      signal: stop.signal,
    });
    const rows = Object.values(r.rows).reduce((a, b) => a + b, 0);
    io.out(
      `done${
        r.resumed ? " (resumed)" : ""
      }: ${rows} rows copied and counted, counters match, ${r.bodiesVerified} bodies identical (SHA-256)`,
    );
    io.out('Now set store = "postgres" and database_url in tern.toml and start tern.');
    return 0;
  } catch (err) {
    if (stop.signal.aborted) {
      io.err("migrate-store: interrupted; run it again to resume");
      return 130;
    }
    if (err instanceof ImportError) {
      io.err(`migrate-store: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    await store.close();
    lock.close();
  }
}
