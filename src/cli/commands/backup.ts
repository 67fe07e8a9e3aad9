// tern backup FILE / tern restore FILE: one file holding a consistent online snapshot of the
// database (VACUUM INTO, safe while the relay runs) and every body file, readable only by its
// owner (0600); and its restore into a data directory without a database.

import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { openServices } from "../../app/services.ts";
import { databasePath, ensureDataDir } from "../../app/data_dir.ts";
import { openSqliteStore, restoreBodyFiles } from "../../store/sqlite/mod.ts";
import { fsyncDir } from "../../store/sqlite/body_files.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = `tern backup FILE
tern restore FILE`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {});
  const [sub, file] = positionals;
  if ((sub !== "backup" && sub !== "restore") || !file || positionals.length !== 2) {
    throw new UsageError(`${sub ?? "backup"}: expected a FILE`);
  }
  const config = configFrom(values, io);
  if (sub === "backup") {
    if (existsSync(file)) {
      io.err(`backup: ${file} exists; choose a new file name`);
      return 1;
    }
    const svc = await openServices(config);
    try {
      // The store writes the snapshot into a new file only the owner can read (password hashes
      // and tokens are in it).
      await svc.store.backup(file);
    } finally {
      await svc.close();
    }
    io.out(`Backup written to ${file} (${statSync(file).size} bytes).`);
    io.out("Keep a copy of data_dir/dkim.key and data_dir/tls/ too: they are not in the database.");
    return 0;
  }
  const target = databasePath(config.dataDir);
  if (existsSync(target)) {
    io.err(`restore: ${target} exists; restore only into a data directory without a database`);
    return 1;
  }
  if (!existsSync(file)) {
    io.err(`restore: ${file} does not exist`);
    return 1;
  }
  // Opening checks the file is a tern database with known, untampered migrations.
  try {
    await openSqliteStore(file, { bodiesDir: null }).close();
  } catch (err) {
    io.err(`restore: ${file} is not a usable tern database: ${(err as Error).message}`);
    return 1;
  }
  ensureDataDir(config.dataDir);
  // The database gets its name only once its body files are written: a restore that stops
  // part-way (a full disk, kill -9) leaves no tern.db that would start without bodies, and can
  // simply be run again.
  const partial = `${target}.restoring`;
  rmSync(partial, { force: true });
  let files;
  try {
    copyFileSync(file, partial);
    chmodSync(partial, 0o600);
    files = restoreBodyFiles(partial, join(config.dataDir, "bodies"));
    fsyncFile(partial);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
  renameSync(partial, target);
  fsyncDir(config.dataDir);
  io.out(`Restored ${file} into ${target} (${files} body files).`);
  return 0;
}

function fsyncFile(path: string): void {
  const fd = openSync(path, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
