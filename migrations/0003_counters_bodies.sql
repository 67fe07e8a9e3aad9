-- tern schema v3: counters kept with every change, large bodies in files, a stored structure blob
-- per body, and a horizon for forgotten expunge tombstones.

-- Bodies past the inline limit keep their bytes in a file under data_dir/bodies/ (named here);
-- the body row then holds its own head inline in `data` and reads the rest from the file at
-- `file_offset`. Several body rows (a queue copy and a stored copy with different heads) may
-- share one file; it is deleted when the last row referencing it goes.
CREATE TABLE body_files (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
ALTER TABLE bodies ADD COLUMN file_id INTEGER REFERENCES body_files(id);
ALTER TABLE bodies ADD COLUMN file_offset INTEGER NOT NULL DEFAULT 0;
-- Opaque to the store: BODYSTRUCTURE, ENVELOPE and part offsets computed once by the receiver.
ALTER TABLE bodies ADD COLUMN structure BLOB;
CREATE INDEX bodies_file ON bodies (file_id) WHERE file_id IS NOT NULL;
-- Bodies over the inline limit stored by older versions are moved to files after the upgrade,
-- in slices (store/sqlite/data_steps.ts); this marks that there are some.
INSERT INTO settings (key, value)
  SELECT 'internal.legacy_bodies', 'pending' WHERE EXISTS (SELECT 1 FROM bodies WHERE size > 131072);
-- Freeing a body asks whether a queue entry still uses it.
CREATE INDEX queue_body ON queue (body_id);

-- Counters: quota usage per account, and per mailbox what STATUS and SELECT report.
ALTER TABLE accounts ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN recent_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;

UPDATE mailboxes SET
  message_count = (SELECT COUNT(*) FROM messages WHERE mailbox_id = mailboxes.id),
  unseen_count = (SELECT COUNT(*) FROM messages WHERE mailbox_id = mailboxes.id AND seen = 0),
  recent_count = (SELECT COUNT(*) FROM messages WHERE mailbox_id = mailboxes.id AND recent = 1),
  size_bytes = (SELECT COALESCE(SUM(size), 0) FROM messages WHERE mailbox_id = mailboxes.id);
UPDATE accounts SET
  used_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM mailboxes WHERE account_id = accounts.id);

-- Every insert, delete and flag change of a message moves the counters in the same transaction.
-- (A mailbox's messages are deleted before the mailbox, so the account is still found.)
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
  UPDATE mailboxes SET message_count = message_count + 1,
    unseen_count = unseen_count + (NEW.seen = 0), recent_count = recent_count + NEW.recent,
    size_bytes = size_bytes + NEW.size
    WHERE id = NEW.mailbox_id;
  UPDATE accounts SET used_bytes = used_bytes + NEW.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = NEW.mailbox_id);
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
  UPDATE mailboxes SET message_count = message_count - 1,
    unseen_count = unseen_count - (OLD.seen = 0), recent_count = recent_count - OLD.recent,
    size_bytes = size_bytes - OLD.size
    WHERE id = OLD.mailbox_id;
  UPDATE accounts SET used_bytes = used_bytes - OLD.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = OLD.mailbox_id);
END;
CREATE TRIGGER messages_count_update AFTER UPDATE OF seen, recent ON messages
  WHEN OLD.seen <> NEW.seen OR OLD.recent <> NEW.recent BEGIN
  UPDATE mailboxes SET unseen_count = unseen_count + (NEW.seen = 0) - (OLD.seen = 0),
    recent_count = recent_count + NEW.recent - OLD.recent
    WHERE id = NEW.mailbox_id;
END;

-- Expunge tombstones are forgotten after a horizon; the highest modseq forgotten per mailbox
-- tells QRESYNC where its knowledge of expunges starts.
ALTER TABLE mailboxes ADD COLUMN expunge_horizon INTEGER NOT NULL DEFAULT 0;
ALTER TABLE expunged ADD COLUMN expunged_at INTEGER NOT NULL DEFAULT 0;
-- Tombstones written before this version count from the upgrade.
UPDATE expunged SET expunged_at = CAST(unixepoch('subsec') * 1000 AS INTEGER);
CREATE INDEX expunged_at ON expunged (expunged_at);
