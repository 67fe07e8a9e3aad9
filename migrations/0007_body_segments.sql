-- tern schema v7: body segments. Bodies from SEGMENT_MIN up to the inline limit are appended to a
-- shared body file (a segment) instead of being stored in the database, where each byte was written
-- twice (the WAL, then the checkpoint) in one system call per 4 KiB page; the segment takes one
-- write per body and one sync per commit (store/sqlite/segments.ts). `live` counts the bytes of
-- the segment's bodies still stored: a mostly deleted segment is compacted (its live bodies are
-- written again at the end of the current one) so that its file can go. NULL for a body file of
-- one message (a spool adopted whole).
ALTER TABLE body_files ADD COLUMN live INTEGER;
