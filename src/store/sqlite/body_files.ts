// Body files under data_dir/bodies/: a spool writes bodies/tmp/NAME; the commit that first stores
// it hard-links it as bodies/NAME (same inode, nothing copied) and fsyncs the directory before
// the database COMMIT, so a committed row never points at a missing file. Files freed by a
// commit are unlinked after it; files of a rolled-back commit are unlinked at once. What a crash
// leaves behind is found by the sweep (bodies/ entries no row names, after a grace period).

import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { RelayError } from "../../errors.ts";
import { Segments } from "./segments.ts";

/** Spool and body file names: 32 lowercase hex digits (random). */
const NAME = /^[0-9a-f]{32}$/;

export function isBodyFileName(name: string): boolean {
  return NAME.test(name);
}

function checked(name: string): string {
  if (!isBodyFileName(name)) throw new RelayError("invalid_argument", "Bad body file name");
  return name;
}

export function newBodyFileName(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

export function tmpDirOf(dir: string): string {
  return join(dir, "tmp");
}

export function ensureBodyDirs(dir: string): void {
  mkdirSync(tmpDirOf(dir), { recursive: true, mode: 0o700 });
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
  }
}

/**
 * File effects of the current write transaction, undone or completed with it. Operations of a
 * batch mark where they start, so one that fails alone (ROLLBACK TO its savepoint) takes back
 * only its own files.
 */
export class TxFiles {
  readonly dir: string;
  /** The writer's body segments (segments.ts), synced before each commit. */
  readonly segments = new Segments();
  #created: string[] = [];
  #doomed: string[] = [];
  constructor(dir: string) {
    this.dir = dir;
    ensureBodyDirs(dir);
  }

  path(name: string): string {
    return join(this.dir, checked(name));
  }

  spoolPath(name: string): string {
    return join(tmpDirOf(this.dir), checked(name));
  }

  /** Makes the spooled file `name` a body file of this transaction (idempotent per name). */
  adopt(name: string): void {
    const final = this.path(name);
    try {
      linkSync(this.spoolPath(name), final);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Linked by an earlier attempt that did not commit: the same bytes, keep them.
      if (code === "EEXIST") return;
      if (code === "ENOENT") {
        throw new RelayError("invalid_argument", "The spooled body is gone (discarded?)");
      }
      throw err;
    }
    this.#created.push(name);
  }

  /** A file this transaction created in place (a new segment): unlinked if it rolls back. */
  created(name: string): void {
    this.#created.push(name);
  }

  /** Removes the temporary (spool) name of an adopted file. */
  dropSpool(name: string): void {
    unlinkQuietly(this.spoolPath(name));
  }

  /** The file goes when this transaction commits. */
  doom(name: string): void {
    this.#doomed.push(name);
    this.segments.forget(name, false);
  }

  mark(): [number, number] {
    return [this.#created.length, this.#doomed.length];
  }

  /** One operation of the batch rolled back to its savepoint. */
  undoTo([created, doomed]: [number, number]): void {
    for (const name of this.#created.splice(created)) {
      this.segments.forget(name, true);
      unlinkQuietly(this.path(name));
    }
    this.#doomed.length = doomed;
  }

  /** Before COMMIT: what was appended to segments and the new directory entries are durable. */
  beforeCommit(): void {
    this.segments.beforeCommit();
    if (this.#created.length) fsyncDir(this.dir);
  }

  /** Whether the open transaction frees files (afterCommit would unlink them). */
  get dooming(): boolean {
    return this.#doomed.length > 0;
  }

  /** After COMMIT: freed files go, unless a backup pinned them (`keep`). */
  afterCommit(keep: boolean): void {
    const doomed = this.#doomed;
    this.#created = [];
    this.#doomed = [];
    if (doomed.length && !keep) {
      for (const name of doomed) unlinkQuietly(this.path(name));
    }
  }

  afterRollback(): void {
    this.undoTo([0, 0]);
    this.segments.afterRollback();
  }

  /** The connection closes: the current segment's descriptor goes. */
  close(): void {
    this.segments.close();
  }
}
