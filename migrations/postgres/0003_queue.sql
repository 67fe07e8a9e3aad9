-- Outbound queue per destination (as SQLite's 0005_queue.sql). Identity values are never handed
-- out twice, so the delivery scheduler can read new recipients after the highest id it has seen
-- without the table change SQLite needed. Each destination's due recipients and its next attempt
-- come from one index, and the expiry timer finds the oldest entry without a scan.
CREATE INDEX queue_recipients_destination ON queue_recipients (domain, next_attempt_at);
CREATE INDEX queue_created ON queue (created_at);
