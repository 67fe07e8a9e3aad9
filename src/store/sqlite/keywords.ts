// The keywords defined in each mailbox (mailbox_keywords, migration 0004): every write that
// gives a message flags records the keywords among them, so FLAGS and PERMANENTFLAGS list the
// mailbox's keywords without reading its messages, also after the last message with one is gone.

import { RelayError } from "../../errors.ts";
import type { Db } from "./db.ts";

/** Keywords one mailbox may define; FLAGS lists them all in one line. */
export const MAX_KEYWORDS_PER_MAILBOX = 1000;

/**
 * Records the keywords (flags not starting with "\") of `flags` in the mailbox, once each and
 * without regard to case (the first spelling stays). Throws when a new one would exceed the limit.
 */
export function noteKeywords(db: Db, mailboxId: number, flags: readonly string[]): void {
  for (const f of flags) {
    if (f.startsWith("\\")) continue;
    const known = db.get(
      "SELECT 1 AS x FROM mailbox_keywords WHERE mailbox_id = ? AND keyword = ?",
      mailboxId,
      f,
    );
    if (known) continue;
    const n = db.get<{ n: number }>(
      "SELECT COUNT(*) AS n FROM mailbox_keywords WHERE mailbox_id = ?",
      mailboxId,
    )!.n;
    if (n >= MAX_KEYWORDS_PER_MAILBOX) {
      throw new RelayError(
        "invalid_argument",
        `Cannot add keyword ${f}: the mailbox has ${MAX_KEYWORDS_PER_MAILBOX} keywords already`,
      );
    }
    db.run("INSERT INTO mailbox_keywords (mailbox_id, keyword) VALUES (?, ?)", mailboxId, f);
  }
}
