// The keywords defined in each mailbox (mailbox_keywords, migration 0004): every write that
// gives a message flags records the keywords among them, so FLAGS and PERMANENTFLAGS list the
// mailbox's keywords without reading its messages, also after the last message with one is gone.

import { RelayError } from "../../errors.ts";
import type { Db } from "./db.ts";

/** Keywords one mailbox may define; FLAGS lists them all in one line. */
export const MAX_KEYWORDS_PER_MAILBOX = 1000;

/**
 * The flags with each keyword spelled as the mailbox first defined it (keywords match without
 * regard to case, and Dovecot shows the first spelling), recording new ones when `define` is set.
 * Throws when a new keyword would exceed the limit.
 */
export function mailboxKeywords(
  db: Db,
  mailboxId: number,
  flags: readonly string[],
  define: boolean,
): string[] {
  const out: string[] = [];
  for (const f of flags) {
    if (f.startsWith("\\") || f === "") {
      out.push(f);
      continue;
    }
    const known = db.get<{ keyword: string }>(
      "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ? AND keyword = ?",
      mailboxId,
      f,
    );
    if (known) {
      out.push(known.keyword);
      continue;
    }
    out.push(f);
    if (!define) continue;
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
  return out;
}
