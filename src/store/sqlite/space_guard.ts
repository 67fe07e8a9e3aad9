// A full disk must not lock users out: SQLite needs free space even to delete (the WAL grows),
// so the writer keeps a reserve file beside the bodies. When a write fails for lack of space the
// reserve is given up and the store goes into low-space mode: writes that add data fail at once
// (with SQLite's "database or disk is full", which the edges answer as a temporary failure),
// writes that delete or change in place (EXPUNGE, retention, flags, logins) go on in the space
// the reserve left. Once the file system has room again the reserve is re-made and the mode ends.

import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/** Store functions refused in low-space mode: they add data. */
export const ADDING = new Set([
  "deliver",
  "append",
  "enqueue",
  "copyMessages",
  "createAccount",
  "createAccountUnlessBlocked",
  "createMailbox",
  "setMetadata",
  "upsertPushToken",
  "enqueuePush",
  "createToken",
  "addBlocked",
  "setBodyStructure",
  "moveLegacyBodies",
]);

const MAX_RESERVE = 4 << 20;
/** Free space is looked at no more often than this while in low-space mode. */
const CHECK_MS = 2000;

export function isFullError(err: unknown): boolean {
  const e = err as { message?: string; errcode?: number; code?: string };
  return e?.errcode === 13 || e?.code === "ENOSPC" ||
    /database or disk is full|SQLITE_FULL|ENOSPC|No space left/i.test(String(e?.message));
}

export function lowSpaceError(): Error {
  const err = new Error(
    "database or disk is full (little space is left: only deletions are taken until there is more)",
  ) as Error & { errcode: number; errstr: string; code: string };
  err.code = "ERR_SQLITE_ERROR";
  err.errcode = 13;
  err.errstr = "database or disk is full";
  return err;
}

export class SpaceGuard {
  readonly path: string;
  #dir: string;
  #want: number | undefined;
  #low = false;
  #checked = 0;

  /** `bytes`: the reserve's size; default 5 % of the file system, at most 4 MiB; 0: none. */
  constructor(dir: string, bytes?: number) {
    this.#dir = dir;
    this.path = join(dir, "reserve");
    this.#want = bytes;
    // No room for it now: it is made when space returns after the first full disk.
    this.#make();
  }

  get low(): boolean {
    return this.#low;
  }

  #size(): number {
    if (this.#want !== undefined) return this.#want;
    const s = statfsSync(this.#dir);
    return Math.min(MAX_RESERVE, Math.floor(s.blocks * s.bsize * 0.05));
  }

  /** Writes the reserve file if it is missing; false when there is no room for it. */
  #make(): boolean {
    const size = this.#size();
    if (size <= 0) return true;
    let fd: number;
    try {
      fd = openSync(this.path, "wx", 0o600);
    } catch (err) {
      return (err as { code?: string }).code === "EEXIST";
    }
    try {
      const zeros = new Uint8Array(Math.min(size, 1 << 20));
      for (let off = 0; off < size;) {
        off += writeSync(fd, zeros, 0, Math.min(zeros.length, size - off));
      }
      fsyncSync(fd);
      return true;
    } catch {
      closeSync(fd);
      fd = -1;
      this.#remove();
      return false;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  #remove(): boolean {
    try {
      unlinkSync(this.path);
      return true;
    } catch {
      return false;
    }
  }

  /** A write failed for lack of space: give up the reserve; true when that freed some. */
  onFull(): boolean {
    this.#low = true;
    this.#checked = Date.now();
    return this.#remove();
  }

  /**
   * Now and then: in low-space mode, is there room again (for the reserve and some more)?
   * Otherwise, is the reserve still there (an operator may have removed the bodies directory)?
   */
  recover(): void {
    if (Date.now() - this.#checked < CHECK_MS) return;
    this.#checked = Date.now();
    if (!this.#low && existsSync(this.path)) return;
    try {
      const s = statfsSync(this.#dir);
      if (s.bavail * s.bsize < 2 * this.#size() + (1 << 20)) return;
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    } catch {
      return;
    }
    if (this.#make()) this.#low = false;
  }
}
