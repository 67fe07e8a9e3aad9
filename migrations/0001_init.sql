-- tern schema v1: accounts, mailboxes, messages with shared bodies, metadata, settings,
-- registration tokens, blocklist, outbound queue, federation stats, push tokens and jobs.

CREATE TABLE accounts (
  id INTEGER PRIMARY KEY,
  address TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_login_at INTEGER,
  blocked INTEGER NOT NULL DEFAULT 0,
  quota_bytes INTEGER,
  enforce_e2ee INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE mailboxes (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  uid_validity INTEGER NOT NULL,
  uid_next INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 1,
  subscribed INTEGER NOT NULL DEFAULT 1,
  special_use TEXT,
  UNIQUE (account_id, name)
);

-- One stored copy of a message body, shared by every local recipient and queue entry.
CREATE TABLE bodies (
  id INTEGER PRIMARY KEY,
  size INTEGER NOT NULL,
  data BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  body_id INTEGER NOT NULL REFERENCES bodies(id),
  size INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  flags TEXT NOT NULL DEFAULT '',
  seen INTEGER NOT NULL DEFAULT 0,
  recent INTEGER NOT NULL DEFAULT 1,
  UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_body ON messages (body_id);
CREATE INDEX messages_date ON messages (internal_date);

-- Expunged UIDs with the modseq of their removal (CONDSTORE/QRESYNC VANISHED, IDLE resync).
CREATE TABLE expunged (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TABLE metadata (
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  mailbox TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (account_id, mailbox, key)
);

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE registration_tokens (
  token TEXT PRIMARY KEY,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  created_at INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT ''
);

CREATE TABLE blocklist (
  entry TEXT PRIMARY KEY,
  reason TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);

CREATE TABLE queue (
  id INTEGER PRIMARY KEY,
  sender TEXT NOT NULL,
  body_id INTEGER NOT NULL REFERENCES bodies(id),
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE queue_recipients (
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
  recipient TEXT NOT NULL,
  domain TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  updated_at INTEGER NOT NULL
);
CREATE INDEX queue_recipients_due ON queue_recipients (status, next_attempt_at);
CREATE INDEX queue_recipients_queue ON queue_recipients (queue_id);

CREATE TABLE federation_stats (
  domain TEXT PRIMARY KEY,
  sent INTEGER NOT NULL DEFAULT 0,
  received INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  last_at INTEGER NOT NULL
);

CREATE TABLE push_tokens (
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  token TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, token)
);

CREATE TABLE push_jobs (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL,
  token TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  start_at INTEGER NOT NULL,
  next_at INTEGER NOT NULL
);
CREATE INDEX push_jobs_due ON push_jobs (next_at);
