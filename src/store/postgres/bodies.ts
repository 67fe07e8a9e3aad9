// Message bodies in PostgreSQL. A body is inline (`data` is the whole message, up to the inline
// limit as with SQLite) or blob-backed: `data` is its own head, the rest is read from a blob at
// `blob_offset`. A blob is a large body's bytes in fixed-size bytea chunks, written while the
// message arrives (spool.ts) and reachable from every instance. Freed blobs are kept for a grace
// period so a reader opened before the free still reads (the sweep deletes them after it).

import { RelayError } from "../../errors.ts";
import type { MessageInput, SmallBody } from "../types.ts";
import { messageSize } from "../sqlite/bodies.ts";
import { fromBase64, type Q, toBase64 } from "./connection.ts";

export { INLINE_LIMIT } from "../sqlite/bodies.ts";

/** Bytes per blob chunk: every chunk but a blob's last has exactly this many. */
export const CHUNK = 256 * 1024;
/** A freed blob is kept this long at least (readers opened before the free keep reading). */
export const READER_GRACE_MS = 10 * 60_000;

const EMPTY = new Uint8Array(0);

/** The store-private name of a spooled blob in a SpooledBody (`file`). */
export function blobName(id: number): string {
  return `blob:${id}`;
}

export function blobIdOf(name: string): number {
  const m = /^blob:(\d+)$/.exec(name);
  if (!m) throw new RelayError("invalid_argument", "Bad spooled body name");
  return Number(m[1]);
}

/** Inserts the body row (adopting its blob); returns its id. */
export async function insertBody(
  q: Q,
  input: MessageInput,
  now: number,
): Promise<number> {
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
    let data = tail;
    if (head.length) {
      data = new Uint8Array(size);
      data.set(head);
      data.set(tail, head.length);
    }
    const [r] = await q<{ id: number }[]>`
      INSERT INTO bodies (size, data, created_at, structure)
      VALUES (${size}, decode(${toBase64(data)}, 'base64'), ${now}, ${structure})
      RETURNING id`;
    return r.id;
  }
  if (!body.file) throw new RelayError("invalid_argument", "Spooled body has no bytes");
  const blob = blobIdOf(body.file);
  // Adopting again a blob that was freed meanwhile (its spool still open) takes it back.
  const rows = await q<{ id: number; blob_size: number }[]>`
    WITH b AS (
      UPDATE blobs SET committed = true, freed_at = NULL WHERE id = ${blob} RETURNING id, size)
    INSERT INTO bodies (size, data, created_at, structure, blob_id, blob_offset)
    SELECT ${size}, ${head}, ${now}, ${structure}, b.id, ${skip} FROM b
    RETURNING id, (SELECT size FROM b) AS blob_size`;
  if (rows.length === 0) {
    throw new RelayError("invalid_argument", "The spooled body is gone (discarded or swept)");
  }
  if (rows[0].blob_size !== body.size) {
    throw new RelayError("invalid_argument", "Spooled body size does not match its blob");
  }
  return rows[0].id;
}

/**
 * Deletes those of the given bodies that nothing references any more, marking their blobs freed
 * when no other body uses them. Returns how many bodies went.
 */
export async function freeBodies(q: Q, ids: Iterable<number>, now: number): Promise<number> {
  const list = [...new Set(ids)];
  if (list.length === 0) return 0;
  // Two instances removing the last two references at once (the copies of one message in two
  // accounts, or its queue entry and a copy: several bodies may share a blob) would each still
  // see the other's and neither free it; the blob of a large body would then stay for good
  // (the sweep only deletes blobs marked freed). The rows are locked first, in id order (bodies,
  // then blobs, so callers never wait for each other in a circle), and the check below runs
  // after the other transaction committed, in a statement of its own that sees its changes.
  await q`SELECT 1 FROM bodies WHERE id = ANY(${list}::bigint[]) ORDER BY id FOR UPDATE`;
  await q`SELECT 1 FROM blobs WHERE id IN (
    SELECT blob_id FROM bodies WHERE id = ANY(${list}::bigint[])) ORDER BY id FOR UPDATE`;
  const [r] = await q<{ n: number }[]>`
    WITH gone AS (
      DELETE FROM bodies b WHERE b.id = ANY(${list}::bigint[])
        AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.body_id = b.id)
        AND NOT EXISTS (SELECT 1 FROM queue x WHERE x.body_id = b.id)
      RETURNING b.id, b.blob_id),
    freed AS (
      UPDATE blobs SET freed_at = ${now}
      WHERE id IN (SELECT blob_id FROM gone WHERE blob_id IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM bodies o WHERE o.blob_id = blobs.id
          AND o.id NOT IN (SELECT id FROM gone))
      RETURNING id)
    SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM freed) AS f`;
  return r.n;
}

export interface BodyRow {
  size: number;
  /** The whole message (inline) or its head (blob-backed). */
  data: Uint8Array;
  blobId: number | null;
  blobOffset: number;
  structure: Uint8Array | null;
}

/** Inline data read in one statement at most; larger inline bodies are read in slices. */
const DATA_SLICE = 1 << 20;

export async function bodyRow(q: Q, id: number): Promise<BodyRow | null> {
  const [r] = await q<
    {
      size: number;
      data_length: number;
      data: string | null;
      blob_id: number | null;
      blob_offset: number;
      structure: Uint8Array | null;
    }[]
  >`
    SELECT size, length(data) AS data_length,
      CASE WHEN length(data) <= ${DATA_SLICE} THEN encode(data, 'base64') END AS data,
      blob_id, blob_offset, structure
    FROM bodies WHERE id = ${id}`;
  if (!r) return null;
  let data = fromBase64(r.data);
  if (!data) {
    // Only bodies given whole in memory are this large inline (spools make blobs past 128 KiB).
    data = new Uint8Array(r.data_length);
    for (let off = 0; off < r.data_length; off += DATA_SLICE) {
      const [s] = await q<{ d: string }[]>`
        SELECT encode(substring(data FROM ${off + 1}::int FOR ${DATA_SLICE}::int), 'base64') AS d
        FROM bodies WHERE id = ${id}`;
      if (!s) return null;
      data.set(fromBase64(s.d)!, off);
    }
  }
  return {
    size: r.size,
    data,
    blobId: r.blob_id,
    blobOffset: r.blob_offset,
    structure: bytes(r.structure),
  };
}

/** Bytes of a blob from `start` to `end` (exclusive), in bounded reads. */
export async function readBlob(
  q: Q,
  blobId: number,
  start: number,
  end: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(Math.max(0, end - start));
  let pos = start;
  while (pos < end) {
    const stop = Math.min(end, pos + 4 * CHUNK);
    const rows = await q<{ seq: number; d: string }[]>`
      SELECT seq, encode(substring(data
        FROM (GREATEST(${pos}::bigint - seq::bigint * ${CHUNK}, 0) + 1)::int
        FOR (LEAST(${stop}::bigint - seq::bigint * ${CHUNK}, ${CHUNK})
          - GREATEST(${pos}::bigint - seq::bigint * ${CHUNK}, 0))::int), 'base64') AS d
      FROM blob_chunks
      WHERE blob_id = ${blobId} AND seq >= ${Math.floor(pos / CHUNK)}
        AND seq <= ${Math.floor((stop - 1) / CHUNK)}
      ORDER BY seq`;
    for (const r of rows) {
      const part = fromBase64(r.d)!;
      out.set(part, pos - start);
      pos += part.length;
    }
    if (pos < stop) throw new Error("The body's stored bytes are shorter than its record");
  }
  return out;
}

/**
 * Whole inline bodies among `ids`, up to `budget` bytes in all (at least one when any is
 * inline), in one statement: the rest must be read with openBody.
 */
export async function smallBodies(
  q: Q,
  ids: number[],
  budget: number,
  inlineLimit: number,
): Promise<Map<number, SmallBody>> {
  const out = new Map<number, SmallBody>();
  if (ids.length === 0) return out;
  const rows = await q<{ id: number; data: string; structure: Uint8Array | null }[]>`
    WITH c AS (
      SELECT b.id, b.size, u.ord FROM unnest(${ids}::bigint[]) WITH ORDINALITY AS u(id, ord)
      JOIN bodies b ON b.id = u.id
      WHERE b.blob_id IS NULL AND b.size <= ${inlineLimit}),
    w AS (SELECT id, ord, sum(size) OVER (ORDER BY ord) AS run FROM c)
    SELECT b.id, encode(b.data, 'base64') AS data, b.structure
    FROM w JOIN bodies b ON b.id = w.id
    WHERE w.run <= ${budget} OR w.ord = (SELECT min(ord) FROM c)
    ORDER BY w.ord`;
  for (const r of rows) {
    out.set(r.id, { bytes: fromBase64(r.data)!, structure: bytes(r.structure) });
  }
  return out;
}

/** bytea results arrive as Buffers: hand out plain Uint8Arrays (structured-cloneable). */
export function bytes(b: Uint8Array | null): Uint8Array | null {
  return b === null ? null : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
