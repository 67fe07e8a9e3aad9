// The keywords defined in each mailbox (mailbox_keywords, migration 0002), as
// store/sqlite/keywords.ts keeps them: every write that gives a message flags records the
// keywords among them, so FLAGS and PERMANENTFLAGS list the mailbox's keywords without reading
// its messages, also after the last message with one is gone. Callers hold the account's lock
// (write_batch.ts), so no other instance defines keywords in the mailbox meanwhile.

import { RelayError } from "../../errors.ts";
import { MAX_KEYWORDS_PER_MAILBOX } from "../sqlite/keywords.ts";
import type { Q } from "./connection.ts";

const isKeyword = (f: string) => f !== "" && !f.startsWith("\\");

/**
 * The flags with each keyword spelled as the mailbox first defined it (keywords match without
 * regard to case, and Dovecot shows the first spelling), recording new ones, in the order
 * given, when `define` is set. Throws when a new keyword would exceed the limit (nothing is
 * recorded then). No statement runs when the flags hold no keyword; one when every keyword is
 * known.
 */
export async function mailboxKeywords(
  q: Q,
  mailboxId: number,
  flags: readonly string[],
  define: boolean,
): Promise<string[]> {
  const words = flags.filter(isKeyword);
  if (words.length === 0) return [...flags];
  // The database's lower() decides what "the same keyword" is, as in the unique index
  // mailbox_keywords_word (which the lookup uses).
  const rows = await q<{ k: string; known: string | null; total: number }[]>`
    WITH given AS (
      SELECT lower(w) AS k, n FROM unnest(${words}::text[]) WITH ORDINALITY AS u(w, n))
    SELECT g.k, x.keyword AS known,
      (SELECT count(*) FROM mailbox_keywords WHERE mailbox_id = ${mailboxId}) AS total
    FROM given g LEFT JOIN mailbox_keywords x
      ON x.mailbox_id = ${mailboxId} AND lower(x.keyword) = g.k
    ORDER BY g.n`;
  // A keyword new to the mailbox takes the spelling of its first occurrence here.
  const spelling = new Map<string, string>();
  const fresh: string[] = [];
  rows.forEach((r, i) => {
    if (spelling.has(r.k)) return;
    spelling.set(r.k, r.known ?? words[i]);
    if (r.known === null) fresh.push(words[i]);
  });
  if (define && fresh.length > 0) {
    const total = rows[0].total;
    if (total + fresh.length > MAX_KEYWORDS_PER_MAILBOX) {
      const f = fresh[Math.max(0, MAX_KEYWORDS_PER_MAILBOX - total)];
      throw new RelayError(
        "invalid_argument",
        `Cannot add keyword ${f}: the mailbox has ${MAX_KEYWORDS_PER_MAILBOX} keywords already`,
      );
    }
    // In the order given: the ids record the order of first use.
    await q`
      INSERT INTO mailbox_keywords (mailbox_id, keyword)
      SELECT ${mailboxId}, w FROM unnest(${fresh}::text[]) WITH ORDINALITY AS u(w, n) ORDER BY n`;
  }
  let i = 0;
  return flags.map((f) => isKeyword(f) ? spelling.get(rows[i++].k)! : f);
}
