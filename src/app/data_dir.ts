// The data directory: database, TLS material, admin token and other secrets, all created on
// first start with owner-only permissions, and tightened again at every start (a restore, a copy
// or an older release may have left them readable by others).

import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (
      (err as { code?: string }).code === "EEXIST" || (err as { code?: string }).code === "ENOTDIR"
    ) {
      throw new Error(`data_dir ${dir} is not a directory`);
    }
    throw err;
  }
}

/**
 * Locks data_dir/serve.lock for as long as the process runs (the lock goes with the process, even
 * after kill -9): one relay per SQLite data directory. A second `tern serve` beside the first (by
 * hand beside the systemd unit, or a new binary started before the old one stopped) would run a
 * second outbound queue and maintenance on the same database, and would migrate it under the
 * first. Throws a one-line error when another process holds the lock.
 */
export function lockDataDir(dir: string): Deno.FsFile {
  ensureDataDir(dir);
  const file = Deno.openSync(join(dir, "serve.lock"), {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  if (!file.tryLockSync(true)) {
    file.close();
    throw new Error(`another tern is running on data_dir ${dir}; stop it first`);
  }
  return file;
}

export function databasePath(dir: string): string {
  return join(dir, "tern.db");
}

/** A hex secret kept in data_dir/name (mode 0600), created on first use. */
export function readOrCreateSecret(dir: string, name: string, bytes = 32): string {
  const path = join(dir, name);
  if (existsSync(path)) {
    const v = readFileSync(path, "utf8").trim();
    if (/^[0-9a-f]{16,}$/.test(v)) return v;
  }
  return writeSecret(dir, name, bytes);
}

export function writeSecret(dir: string, name: string, bytes = 32): string {
  ensureDataDir(dir);
  const v = randomBytes(bytes).toString("hex");
  const path = join(dir, name);
  writeFileSync(path, v + "\n", { mode: 0o600 });
  chmodSync(path, 0o600);
  return v;
}

/** Subdirectories whose files are all tightened (few files: keys and certificates). */
const SMALL_DIRS = new Set(["tls", "acme"]);

/**
 * Tightens the data directory: the directory and its subdirectories to 0700; the database (with
 * its WAL and shared-memory files), keys, certificates and secrets, i.e. every file at the top and
 * in tls/ and acme/, to 0600. Large subdirectories (message bodies) are made 0700 without walking
 * them. Symbolic links are left alone. Returns what was too open and what could not be changed.
 */
export function tightenDataDir(dir: string): { changed: string[]; failed: string[] } {
  const changed: string[] = [];
  const failed: string[] = [];
  const tighten = (path: string, mode: number) => {
    try {
      const st = lstatSync(path);
      const was = st.mode & 0o777;
      if (st.isSymbolicLink() || was === mode) return;
      chmodSync(path, mode);
      // Reported only when it was too open (0400 -> 0600 tightens nothing).
      if (was & ~mode) changed.push(`${path} ${was.toString(8)} -> ${mode.toString(8)}`);
    } catch (err) {
      failed.push(`${path}: ${(err as Error).message}`);
    }
  };
  const walk = (d: string, deep: boolean) => {
    tighten(d, 0o700);
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (err) {
      failed.push(`${d}: ${(err as Error).message}`);
      return;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory()) {
        if (deep || SMALL_DIRS.has(e.name)) walk(path, true);
        else tighten(path, 0o700);
      } else if (e.isFile()) tighten(path, 0o600);
    }
  };
  walk(dir, false);
  return { changed, failed };
}
