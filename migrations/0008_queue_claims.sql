-- tern schema v8: claims on queued recipients. A worker that sends a recipient first claims it
-- for a lease (its id and the lease's end) and renews it while a long transfer runs; another
-- worker skips a recipient under a live claim, and only the claim's owner stores the outcome
-- (store/sqlite/queue_store.ts). A worker that dies leaves its claims to end: the mail is tried
-- again then. The index finds the end of a destination's claims (claims end with the outcome,
-- so it only holds what is being sent).
ALTER TABLE queue_recipients ADD COLUMN claim_owner TEXT;
ALTER TABLE queue_recipients ADD COLUMN claim_until INTEGER;
CREATE INDEX queue_recipients_claims ON queue_recipients (domain, claim_until)
  WHERE claim_until IS NOT NULL;
