// The SQL migrations, embedded in the module graph so the binary and the bundle carry them.

import m0001 from "../../../migrations/0001_init.sql" with { type: "text" };
import m0002 from "../../../migrations/0002_subscriptions.sql" with { type: "text" };
import m0003 from "../../../migrations/0003_counters_bodies.sql" with { type: "text" };
import m0004 from "../../../migrations/0004_imap_scale.sql" with { type: "text" };
import m0005 from "../../../migrations/0005_queue.sql" with { type: "text" };
import m0006 from "../../../migrations/0006_bulk_delete.sql" with { type: "text" };
import m0007 from "../../../migrations/0007_body_segments.sql" with { type: "text" };
import m0008 from "../../../migrations/0008_queue_claims.sql" with { type: "text" };

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "0001_init.sql", sql: m0001 },
  { version: 2, name: "0002_subscriptions.sql", sql: m0002 },
  { version: 3, name: "0003_counters_bodies.sql", sql: m0003 },
  { version: 4, name: "0004_imap_scale.sql", sql: m0004 },
  { version: 5, name: "0005_queue.sql", sql: m0005 },
  { version: 6, name: "0006_bulk_delete.sql", sql: m0006 },
  { version: 7, name: "0007_body_segments.sql", sql: m0007 },
  { version: 8, name: "0008_queue_claims.sql", sql: m0008 },
];
