// Shared message bodies: stored once, freed when no message or queue entry refers to them. A body
// is inline (the whole message in `data`) or file-backed (`data` is its head, the rest is read
// from a body file at `file_offset`); see body_files.ts for the file side.

import { RelayError } from "../../errors.ts";
import type { MessageInput } from "../types.ts";
import type { Db } from "./db.ts";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import type { TxFiles } from "./body_files.ts";
import { readAllAt, SEGMENT_MIN } from "./segments.ts";

/** Bodies up to this size are kept in the database: one WAL fsync covers body and metadata. */
export const INLINE_LIMIT = 128 * 1024;

const EMPTY = new Uint8Array(0);

export function messageSize(input: MessageInput): number {
  const skip = input.skip ?? 0;
  if (!Number.isInteger(skip) || skip < 0 || skip > input.body.size) {
    throw new RelayError("invalid_argument", `Cannot skip ${skip} of ${input.body.size} bytes`);
  }
  return (input.head?.length ?? 0) + input.body.size - skip;
}

/** Inserts the body row (and adopts its file), returning its id. */
export function insertBody(
  db: Db,
  files: TxFiles | null,
  input: MessageInput,
  now: number,
): number {
  const size = messageSize(input);
  const skip = input.skip ?? 0;
  const head = input.head ?? EMPTY;
  const structure = input.structure ?? null;
  const { body } = input;
  if (body.bytes) {
    if (body.bytes.length !== body.size) {
      throw new RelayError("invalid_argument", "Spooled body size does not match its bytes");
    }
    const tail = body.bytes.subarray(skip);
    if (files && size >= SEGMENT_MIN) {
      // The whole message goes to the current segment; the row keeps no head of its own.
      const at = files.segments.append(db, files, head.length ? [head, tail] : [tail], now);
      return db.run(
        `INSERT INTO bodies (size, data, created_at, structure, file_id, file_offset)
         VALUES (?, x'', ?, ?, ?, ?)`,
        size,
        now,
        structure,
        at.fileId,
        at.offset,
      ).lastInsertRowid;
    }
    let data = tail;
    if (head.length) {
      data = new Uint8Array(size);
      data.set(head);
      data.set(tail, head.length);
    }
    return db.run(
      "INSERT INTO bodies (size, data, created_at, structure) VALUES (?, ?, ?, ?)",
      size,
      data,
      now,
      structure,
    ).lastInsertRowid;
  }
  if (!body.file) throw new RelayError("invalid_argument", "Spooled body has no bytes");
  if (!files) throw new RelayError("invalid_argument", "This store keeps no body files");
  return db.run(
    `INSERT INTO bodies (size, data, created_at, structure, file_id, file_offset)
     VALUES (?, ?, ?, ?, ?, ?)`,
    size,
    head,
    now,
    structure,
    bodyFileId(db, files, body.file, body.size, now),
    skip,
  ).lastInsertRowid;
}

/** The row of a spooled file, adopting the file on its first use. */
function bodyFileId(db: Db, files: TxFiles, name: string, size: number, now: number): number {
  const known = db.get<{ id: number }>("SELECT id FROM body_files WHERE name = ?", name);
  if (known) return known.id;
  files.adopt(name);
  return db.run(
    "INSERT INTO body_files (name, size, created_at) VALUES (?, ?, ?)",
    name,
    size,
    now,
  ).lastInsertRowid;
}

/** Deletes those of the given bodies that nothing references any more (and unused files). */
export function freeBodies(db: Db, files: TxFiles | null, ids: Iterable<number>): number {
  let freed = 0;
  for (const id of new Set(ids)) {
    const row = db.get<{ file_id: number | null; in_file: number }>(
      `SELECT file_id, size - length(data) AS in_file FROM bodies WHERE id = ?
       AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = ?)
       AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = ?)`,
      id,
      id,
      id,
    );
    if (!row) continue;
    db.run("DELETE FROM bodies WHERE id = ?", id);
    freed++;
    if (row.file_id !== null) freeFile(db, files, row.file_id, row.in_file);
  }
  return freed;
}

function freeFile(db: Db, files: TxFiles | null, fileId: number, inFile: number): void {
  // A segment counts the bytes still stored in it (segments.ts compacts it when few are left).
  db.run("UPDATE body_files SET live = live - ? WHERE id = ? AND live IS NOT NULL", inFile, fileId);
  if (db.get("SELECT 1 AS x FROM bodies WHERE file_id = ?", fileId)) return;
  const f = db.get<{ name: string }>("SELECT name FROM body_files WHERE id = ?", fileId);
  if (!f) return;
  db.run("DELETE FROM body_files WHERE id = ?", fileId);
  files?.doom(f.name);
}

/**
 * One page of the unreferenced-body scan: bodies with id > afterId, up to `limit` looked at.
 * Returns how many were freed and where the next page starts (null at the end).
 */
export function freeUnreferencedPage(
  db: Db,
  files: TxFiles | null,
  afterId: number,
  limit: number,
): { freed: number; next: number | null } {
  const ids = db.all<{ id: number }>(
    "SELECT id FROM bodies WHERE id > ? ORDER BY id LIMIT ?",
    afterId,
    limit,
  ).map((r) => r.id);
  return {
    freed: freeBodies(db, files, ids),
    next: ids.length < limit ? null : ids[ids.length - 1],
  };
}

export interface BodyRow {
  size: number;
  /** The whole message (inline) or its head (file-backed); null when too big to read here. */
  data: Uint8Array | null;
  dataLength: number;
  file: string | null;
  fileOffset: number;
  structure: Uint8Array | null;
}

/** The body's row; `data` only when it is at most `maxData` bytes. */
export function bodyRow(db: Db, id: number, maxData: number): BodyRow | null {
  const r = db.get<
    {
      size: number;
      data_length: number;
      file_offset: number;
      structure: Uint8Array | null;
      name: string | null;
    }
  >(
    `SELECT b.size, length(b.data) AS data_length, b.file_offset, b.structure, f.name
     FROM bodies b LEFT JOIN body_files f ON f.id = b.file_id WHERE b.id = ?`,
    id,
  );
  if (!r) return null;
  return {
    size: r.size,
    dataLength: r.data_length,
    data: r.data_length <= maxData ? bodyData(db, id) : null,
    file: r.name,
    fileOffset: r.file_offset,
    structure: r.structure,
  };
}

export function bodyData(db: Db, id: number): Uint8Array | null {
  return db.get<{ data: Uint8Array }>("SELECT data FROM bodies WHERE id = ?", id)?.data ?? null;
}

/**
 * Whole bodies among `ids` that are inline or in a segment (segments.ts; read from its file here,
 * as SQLite reads an inline one), up to `budget` bytes in all (at least one when any fits the
 * inline limit): the rest must be read another way.
 */
export function smallBodies(
  db: Db,
  ids: number[],
  budget: number,
  bodiesDir: string | null = null,
): Map<number, { bytes: Uint8Array; structure: Uint8Array | null }> {
  const out = new Map<number, { bytes: Uint8Array; structure: Uint8Array | null }>();
  let used = 0;
  // One read transaction for the batch: a statement outside one opens and closes its own
  // (measured: most of the cost of reading 50 small bodies).
  db.snapshot(() => {
    for (const id of ids) {
      const r = db.get<{ size: number; file_id: number | null; segment: number | null }>(
        `SELECT b.size, b.file_id, f.live AS segment
         FROM bodies b LEFT JOIN body_files f ON f.id = b.file_id WHERE b.id = ?`,
        id,
      );
      if (!r || r.size > INLINE_LIMIT) continue;
      if (r.file_id !== null && (r.segment === null || !bodiesDir)) continue;
      if (used + r.size > budget && out.size > 0) break;
      const d = db.get<
        { data: Uint8Array; structure: Uint8Array | null; file_offset: number; name: string | null }
      >(
        `SELECT b.data, b.structure, b.file_offset, f.name
         FROM bodies b LEFT JOIN body_files f ON f.id = b.file_id WHERE b.id = ?`,
        id,
      );
      if (!d) continue;
      let bytes = d.data;
      if (d.name !== null) {
        let whole: Uint8Array | null;
        try {
          whole = readSegmentBody(bodiesDir!, d.name, d.data, d.file_offset, r.size);
        } catch {
          // A damaged segment (cut short): left out, so that only this body fails, in the
          // caller's openBody, and the intact ones of the batch are still served.
          continue;
        }
        if (!whole) continue; // gone (compacted or freed meanwhile): the caller opens it instead
        bytes = whole;
      }
      out.set(id, { bytes, structure: d.structure });
      used += r.size;
    }
  });
  return out;
}

/** A segment body's head (its row's data) and the rest from its file; null if the file is gone. */
export function readSegmentBody(
  dir: string,
  name: string,
  head: Uint8Array,
  offset: number,
  size: number,
): Uint8Array | null {
  let fd: number;
  try {
    fd = openSync(join(dir, name), "r");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return null;
    throw err;
  }
  try {
    const out = new Uint8Array(size);
    out.set(head);
    readAllAt(fd, out.subarray(head.length), offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

export function setBodyStructure(db: Db, id: number, structure: Uint8Array): void {
  db.run("UPDATE bodies SET structure = ? WHERE id = ?", structure, id);
}
