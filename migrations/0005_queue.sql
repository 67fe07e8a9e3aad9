-- Outbound queue per destination: each destination's due recipients and its next attempt come
-- from one index, and the expiry timer finds the oldest entry without a scan.
CREATE INDEX queue_recipients_destination ON queue_recipients (domain, next_attempt_at);
CREATE INDEX queue_created ON queue (created_at);
