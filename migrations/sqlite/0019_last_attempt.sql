-- 0019: nothing changes on SQLite.
--
-- Postgres migration 0019 keeps an execution's last attempt in its row, so
-- that a claim and a completion stop writing a separate attempt row: there
-- each is a heap tuple, an index entry and WAL records in a partitioned
-- table, on a server whose CPU per execution is what the bench measures.
-- SQLite keeps its attempts as before. The number is kept so that schema
-- version N means the same schema on both SQL backends.
SELECT 1;
