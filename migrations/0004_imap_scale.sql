-- tern schema v4 (applied after 0003's counters): what IMAP needs to answer without reading every message of a mailbox.

-- Every keyword ever defined in a mailbox, in the order it was first used: FLAGS and
-- PERMANENTFLAGS list them all, also after the last message carrying one is gone (as Dovecot
-- does). Keywords match without regard to case (RFC 9051 §2.3.2); the first spelling stays.
CREATE TABLE mailbox_keywords (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  keyword TEXT NOT NULL COLLATE NOCASE,
  UNIQUE (mailbox_id, keyword)
);

-- The keywords on stored messages (flags are space-separated; system flags start with "\").
WITH RECURSIVE split(id, mailbox_id, rest, word) AS (
  SELECT id, mailbox_id, flags || ' ', '' FROM messages WHERE flags <> ''
  UNION ALL
  SELECT id, mailbox_id, substr(rest, instr(rest, ' ') + 1), substr(rest, 1, instr(rest, ' ') - 1)
  FROM split WHERE rest <> ''
)
INSERT OR IGNORE INTO mailbox_keywords (mailbox_id, keyword)
  SELECT mailbox_id, word FROM split
  WHERE word <> '' AND substr(word, 1, 1) <> '\'
  GROUP BY mailbox_id, word COLLATE NOCASE
  ORDER BY MIN(id);

-- \Recent as a boundary, as Dovecot keeps it: the messages with uid >= first_recent_uid are
-- recent, and the session that claims them moves the boundary to uid_next (one row written,
-- whatever the number of messages).
-- The messages.recent column is no longer read; recent_count (migration 0003) follows the
-- boundary instead.
ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;
UPDATE mailboxes SET first_recent_uid = COALESCE(
  (SELECT MIN(uid) FROM messages WHERE mailbox_id = mailboxes.id AND recent = 1), uid_next);
UPDATE mailboxes SET recent_count = (SELECT COUNT(*) FROM messages
  WHERE mailbox_id = mailboxes.id AND uid >= mailboxes.first_recent_uid);
DROP TRIGGER messages_count_insert;
DROP TRIGGER messages_count_delete;
DROP TRIGGER messages_count_update;
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
  UPDATE mailboxes SET message_count = message_count + 1,
    unseen_count = unseen_count + (NEW.seen = 0),
    recent_count = recent_count + (NEW.uid >= first_recent_uid),
    size_bytes = size_bytes + NEW.size
    WHERE id = NEW.mailbox_id;
  UPDATE accounts SET used_bytes = used_bytes + NEW.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = NEW.mailbox_id);
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
  UPDATE mailboxes SET message_count = message_count - 1,
    unseen_count = unseen_count - (OLD.seen = 0),
    recent_count = recent_count - (OLD.uid >= first_recent_uid),
    size_bytes = size_bytes - OLD.size
    WHERE id = OLD.mailbox_id;
  UPDATE accounts SET used_bytes = used_bytes - OLD.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = OLD.mailbox_id);
END;
CREATE TRIGGER messages_count_update AFTER UPDATE OF seen ON messages
  WHEN OLD.seen <> NEW.seen BEGIN
  UPDATE mailboxes SET unseen_count = unseen_count + (NEW.seen = 0) - (OLD.seen = 0)
    WHERE id = NEW.mailbox_id;
END;

-- The first unseen message (SELECT's [UNSEEN n]) and SEARCH UNSEEN in O(result).
CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE seen = 0;
-- EXPUNGE finds the messages flagged \Deleted in O(result). Queries must use the same
-- expression for SQLite to choose this index.
CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE instr(flags, '\Deleted') > 0;

-- CHANGEDSINCE, QRESYNC and the sessions' resync page through changes in (modseq, uid) order.
DROP INDEX IF EXISTS messages_modseq;
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq, uid);
DROP INDEX IF EXISTS expunged_modseq;
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq, uid);

-- What a message was when it was expunged: a session that has not been told yet still shows
-- it, and SEARCH evaluates flags, size and INTERNALDATE on it (as Dovecot does). NULL for
-- tombstones written before this migration.
ALTER TABLE expunged ADD COLUMN flags TEXT;
ALTER TABLE expunged ADD COLUMN size INTEGER;
ALTER TABLE expunged ADD COLUMN internal_date INTEGER;
