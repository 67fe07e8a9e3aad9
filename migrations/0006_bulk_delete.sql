-- tern schema v6: deleting messages moves the counters once per statement, not once per row.
-- The delete trigger of 0004 ran two UPDATEs for every message, so expunging 45 000 messages ran
-- 90 000 statements in the writer. The code that deletes messages (store/sqlite/mail_store.ts:
-- removeUids and deleteMailbox) now subtracts what it deletes, in the same transaction; deleting
-- an account drops its mailboxes' counters with their rows. Counters are unchanged by this
-- migration: they were right before and stay right.
DROP TRIGGER messages_count_delete;
