// Body segments: bodies of SEGMENT_MIN bytes or more that reach the writer in memory (a spooled
// body past the inline limit is already a file of its own) are appended to a body file shared
// with other bodies (a segment) instead of going into the database. In the database each
// such byte reached the disk twice (the WAL, then the checkpoint into the database file), one
// system call per 4 KiB page each time; in a segment it is written once, in one call per body, and
// one sync of the segment per commit covers every body of the batch (issue 21, measured with 100 KB
// submissions: `deno task bench --only submit --sizes 100k --rounds 1 --no-refstack`, 6
// alternating pairs, medians: accepted 524 -> 620 msgs/s, server CPU 2.16 -> 1.84 ms/msg).
//
// Only the writer appends, to its current segments, and syncs them before the COMMIT whose rows
// point into them, so a committed row never points at bytes that are not on the disk. What a
// failed or rolled-back write leaves in a segment is never pointed at: garbage that goes with the
// segment. A segment is a body file like any other (body_files.ts: created in the transaction that
// first uses it, unlinked after the commit that frees its last body). body_files.size is its
// length as far as committed rows may point; body_files.live the bytes of its bodies still stored.
// A segment past SEGMENT_MAX is left for a new one; a writer that starts begins new ones.
//
// Compaction: chat messages are mostly fetched and deleted within minutes, but one body kept (a
// device that is offline for days) would keep the whole segment's file. A segment older than
// COMPACT_MIN_AGE_MS whose live bytes fell below COMPACT_BELOW of its size has its live bodies
// written again, at the end of a segment that takes only moved bodies: those are likely to live
// long, and kept out of the stream of new bodies they are not copied again at every compaction.
// The copies are synced before the commit that moves their rows, like any append; the old file
// then has no body and goes like any freed file: after that commit is durable, never while a
// backup copies files. A reader that opened the old file keeps reading it; one that read the old
// row and opens after the unlink reads the row again (mod.ts openBody).

import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import type { Db } from "./db.ts";
import { ensureBodyDirs, newBodyFileName, type TxFiles } from "./body_files.ts";
import { isFullError } from "./space_guard.ts";

/** In-memory bodies of at least this many bytes go to a segment. */
export const SEGMENT_MIN = 32 * 1024;
/** A segment this long is closed; the next body starts a new one. */
export const SEGMENT_MAX = 16 * 1024 * 1024;
/** A segment whose live bytes are under this share of its size is compacted. */
export const COMPACT_BELOW = 0.5;
/**
 * Segments younger than this are left alone: most of their bodies are still to be fetched and
 * deleted, which frees them without a copy.
 */
export const COMPACT_MIN_AGE_MS = 10 * 60_000;

/** Lanes (Segments.#cur): new bodies, and bodies moved by compaction. */
const NEW = 0;
const MOVED = 1;

interface Current {
  id: number;
  name: string;
  fd: number;
  /** Where the next body goes (the file's length as this writer wrote it). */
  end: number;
}

/** Where a body was written: its segment's body_files id and the offset in it. */
export interface SegmentPlace {
  fileId: number;
  offset: number;
}

export class Segments {
  /** Length past which a segment is closed (tests set a small one). */
  max = SEGMENT_MAX;
  /**
   * The segments being appended to, by lane: new bodies, and bodies moved by compaction. A body
   * that outlived its segment is likely to live long: kept apart from the stream of new ones, it
   * is not copied again each time the segment it was moved to is mostly deleted in its turn.
   */
  #cur: [Current | null, Current | null] = [null, null];
  /** Descriptors with bytes of the open transaction that are not synced yet. */
  #unsynced = new Set<number>();
  /** Descriptors no longer appended to, closed when the transaction ends. */
  #retired: number[] = [];

  /** The body_files id of the segment new bodies go to, or null. */
  get currentId(): number | null {
    return this.#cur[NEW]?.id ?? null;
  }

  /**
   * Appends `parts` (one body) to the lane's current segment, starting one when there is none or
   * it is full, and records the new length and live bytes in its row.
   */
  append(db: Db, files: TxFiles, parts: Uint8Array[], now: number, lane = NEW): SegmentPlace {
    if ((this.#cur[lane]?.end ?? 0) >= this.max) this.#retire(lane);
    // Unlinked under the writer (an operator removed the bodies directory): a body appended to
    // it would be acknowledged and gone. A new segment is started in a directory made again.
    if (this.#cur[lane] && fstatSync(this.#cur[lane]!.fd).nlink === 0) this.#retire(lane);
    let cur = this.#cur[lane];
    if (!cur) {
      try {
        cur = this.#start(db, files, now, lane);
      } catch (err) {
        throw readsLikeSqlite(err);
      }
    }
    const offset = cur.end;
    let total = 0;
    try {
      for (const p of parts) {
        writeAllAt(cur.fd, p, offset + total);
        total += p.length;
        this.#unsynced.add(cur.fd);
      }
    } catch (err) {
      // What reached the file is garbage no row will point at; the next body starts a new
      // segment (this one's length is no longer known). Earlier bodies of the transaction in it
      // are still synced before the commit.
      this.#retire(lane);
      throw readsLikeSqlite(err);
    }
    cur.end = offset + total;
    db.run(
      "UPDATE body_files SET size = ?, live = live + ? WHERE id = ?",
      cur.end,
      total,
      cur.id,
    );
    return { fileId: cur.id, offset };
  }

  #start(db: Db, files: TxFiles, now: number, lane: number): Current {
    const name = newBodyFileName();
    let fd: number;
    try {
      fd = openSync(files.path(name), "wx", 0o600);
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") throw err;
      ensureBodyDirs(files.dir);
      fd = openSync(files.path(name), "wx", 0o600);
    }
    // From here the file is the transaction's: a rollback unlinks it (TxFiles.undoTo calls
    // forget() below), the commit makes its directory entry durable.
    files.created(name);
    try {
      const id = db.run(
        "INSERT INTO body_files (name, size, created_at, live) VALUES (?, 0, ?, 0)",
        name,
        now,
      ).lastInsertRowid;
      const cur = { id, name, fd, end: 0 };
      this.#cur[lane] = cur;
      return cur;
    } catch (err) {
      this.#retired.push(fd);
      throw err;
    }
  }

  /** The lane's segment takes no more bodies (what it holds is still synced at the commit). */
  #retire(lane: number): void {
    const cur = this.#cur[lane];
    if (!cur) return;
    this.#retired.push(cur.fd);
    this.#cur[lane] = null;
  }

  /**
   * The file `name` is unlinked (`unlinked`: its transaction or operation rolled back) or doomed
   * (its last body is freed): when it is a current segment, nothing more goes into it. Its
   * unsynced bytes need no sync only when it is gone: a doomed file comes back if the operation
   * that freed its bodies fails after all, with rows pointing at what this transaction appended.
   */
  forget(name: string, unlinked: boolean): void {
    for (const lane of [NEW, MOVED]) {
      const cur = this.#cur[lane];
      if (cur?.name !== name) continue;
      if (unlinked) this.#unsynced.delete(cur.fd);
      this.#retire(lane);
    }
  }

  /** Before COMMIT: every byte the transaction appended is on the disk. */
  beforeCommit(): void {
    for (const fd of this.#unsynced) {
      fdatasyncSync(fd);
      if (fstatSync(fd).nlink === 0) {
        throw new Error("A body segment was removed before its commit: the bodies are not stored");
      }
    }
    this.#unsynced.clear();
    this.#closeRetired();
  }

  /** The transaction is gone: its bytes need no sync. */
  afterRollback(): void {
    this.#unsynced.clear();
    this.#closeRetired();
  }

  close(): void {
    this.#retire(NEW);
    this.#retire(MOVED);
    this.#unsynced.clear();
    this.#closeRetired();
  }

  #closeRetired(): void {
    for (const fd of this.#retired.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }

  /**
   * One compaction step: the segment with the smallest share of live bytes among those created
   * before `createdBefore` with less than COMPACT_BELOW of their size live (never a current one)
   * has its bodies appended to the segment of moved bodies and their rows moved; the old file then
   * has no body and is doomed. Returns the bytes moved and the file's length, or null when no
   * segment qualifies. Runs inside the caller's write transaction.
   */
  compactOne(
    db: Db,
    files: TxFiles,
    createdBefore: number,
    now: number,
  ): { moved: number; freed: number } | null {
    const seg = db.get<{ id: number; name: string; size: number }>(
      `SELECT id, name, size FROM body_files
       WHERE live IS NOT NULL AND id NOT IN (?, ?) AND created_at < ? AND live < size * ?
       ORDER BY live * 1.0 / max(size, 1) LIMIT 1`,
      this.#cur[NEW]?.id ?? -1,
      this.#cur[MOVED]?.id ?? -1,
      createdBefore,
      COMPACT_BELOW,
    );
    if (!seg) return null;
    const bodies = db.all<{ id: number; size: number; head: number; file_offset: number }>(
      "SELECT id, size, length(data) AS head, file_offset FROM bodies WHERE file_id = ?",
      seg.id,
    );
    let moved = 0;
    if (bodies.length) {
      const fd = openSync(files.path(seg.name), "r");
      try {
        for (const b of bodies) {
          const bytes = new Uint8Array(b.size - b.head);
          readAllAt(fd, bytes, b.file_offset);
          const place = this.append(db, files, [bytes], now, MOVED);
          db.run(
            "UPDATE bodies SET file_id = ?, file_offset = ? WHERE id = ?",
            place.fileId,
            place.offset,
            b.id,
          );
          moved += bytes.length;
        }
      } finally {
        closeSync(fd);
      }
    }
    db.run("DELETE FROM body_files WHERE id = ?", seg.id);
    files.doom(seg.name);
    return { moved, freed: seg.size };
  }
}

/** A full disk reads like SQLite's own full-disk error, as everywhere else in the store. */
function readsLikeSqlite(err: unknown): unknown {
  if (!isFullError(err)) return err;
  return new Error(`database or disk is full (a body segment: ${(err as Error).message})`, {
    cause: err,
  });
}

function writeAllAt(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, bytes.length - done, position + done);
  }
}

/** Fills `into` from the file at `position`; a file that ends first is an error. */
export function readAllAt(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error("the body file is shorter than its record");
    done += n;
  }
}
