-- IMAP subscriptions are names, kept apart from mailboxes (RFC 9051 §6.3.7): a subscription
-- survives DELETE of its mailbox, and a name may be subscribed before it exists.
CREATE TABLE subscriptions (
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

INSERT INTO subscriptions (account_id, name)
  SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
