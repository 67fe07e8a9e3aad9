-- Claims on queued recipients (as SQLite's 0008_queue_claims.sql). With several instances, the
-- one that takes over the outbound worker loads the queue while the one before it may still be
-- sending: a recipient is sent by the worker holding its claim (an id and the lease's end,
-- renewed during long transfers), and only that worker stores its outcome. The claim of a worker
-- that died ends with its lease and the mail is tried again. The index finds the end of a
-- destination's claims; claims end with the outcome, so it only holds what is being sent.
ALTER TABLE queue_recipients ADD COLUMN claim_owner text;
ALTER TABLE queue_recipients ADD COLUMN claim_until bigint;
CREATE INDEX queue_recipients_claims ON queue_recipients (domain, claim_until)
  WHERE claim_until IS NOT NULL;
