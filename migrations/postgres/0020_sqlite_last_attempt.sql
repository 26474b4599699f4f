-- 0020: nothing changes on Postgres.
--
-- SQLite migration 0020 keeps an execution's last attempt in its row, as
-- Postgres migration 0019 already does here. The number is kept so that
-- schema version N means the same schema on both SQL backends.
SELECT 1;
