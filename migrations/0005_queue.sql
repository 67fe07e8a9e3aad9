-- Outbound queue per destination. Recipient ids never come back (AUTOINCREMENT): the delivery
-- scheduler reads new recipients after the highest id it has seen, and a plain rowid is reused
-- once the rows with the highest ids are gone. Each destination's due recipients and its next
-- attempt come from one index, and the expiry timer finds the oldest entry without a scan.
CREATE TABLE queue_recipients_next (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
  recipient TEXT NOT NULL,
  domain TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  updated_at INTEGER NOT NULL
);
INSERT INTO queue_recipients_next
  (id, queue_id, recipient, domain, status, attempts, next_attempt_at, last_error, updated_at)
  SELECT id, queue_id, recipient, domain, status, attempts, next_attempt_at, last_error, updated_at
  FROM queue_recipients;
DROP TABLE queue_recipients;
ALTER TABLE queue_recipients_next RENAME TO queue_recipients;
CREATE INDEX queue_recipients_due ON queue_recipients (status, next_attempt_at);
CREATE INDEX queue_recipients_queue ON queue_recipients (queue_id);
CREATE INDEX queue_recipients_destination ON queue_recipients (domain, next_attempt_at);
CREATE INDEX queue_created ON queue (created_at);
