-- 0016: nothing changes on SQLite.
--
-- Postgres migration 0016 moves the check "does a fair limit cover this
-- lane?" from a per-row trigger call into the submitting statement. The
-- SQLite triggers already make that check in their WHEN clause, which may
-- hold a subquery there, at the cost of one probe of `limits` per row.
-- The number is kept so that schema version N means the same schema on
-- both SQL backends.
SELECT 1;
