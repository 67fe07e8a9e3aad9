import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Db } from "./db.ts";
import { WRITER_CHECKPOINT_BYTES } from "./checkpointer.ts";

/** A database file created with `pageSize` (a page size only takes while the file is empty). */
function createWithPageSize(path: string, pageSize: number): void {
  const pre = new DatabaseSync(path);
  pre.exec(`PRAGMA page_size = ${pageSize}`);
  pre.exec("PRAGMA journal_mode = WAL");
  pre.close();
}

Deno.test("the writer's checkpoint threshold is the same WAL size whatever the page size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const pageSize of [4096, 16384, 65536]) {
      const path = `${dir}/p${pageSize}.db`;
      createWithPageSize(path, pageSize);
      const db = new Db(path, { walAutocheckpointBytes: WRITER_CHECKPOINT_BYTES });
      try {
        assert.equal(db.pageSize, pageSize);
        const frames = db.get<{ wal_autocheckpoint: number }>("PRAGMA wal_autocheckpoint")!
          .wal_autocheckpoint;
        // Each frame is one page plus its 24-byte header: the threshold stays within 8 MiB.
        const bytes = frames * (pageSize + 24);
        assert.ok(bytes <= WRITER_CHECKPOINT_BYTES, `${frames} frames of ${pageSize}`);
        assert.ok(bytes > WRITER_CHECKPOINT_BYTES - (pageSize + 24), `${frames} frames`);
        assert.ok(bytes < 8 * 1024 * 1024);
      } finally {
        db.close();
      }
    }
    // The 4 KiB figure the threshold was measured with.
    const db = new Db(`${dir}/p4096.db`, { walAutocheckpointBytes: WRITER_CHECKPOINT_BYTES });
    try {
      assert.equal(
        db.get<{ wal_autocheckpoint: number }>("PRAGMA wal_autocheckpoint")!.wal_autocheckpoint,
        1800,
      );
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
