-- 0017: nothing changes on SQLite.
--
-- Postgres migration 0017 folds the CHECK constraints of `executions` and
-- `attempts` into one per table, because Postgres parses and plans them
-- again for every statement and every partition child it writes. SQLite
-- compiles a table's CHECK constraints into each prepared statement once,
-- and Baton keeps its statements prepared, so they cost it nothing per
-- statement. The number is kept so that schema version N means the same
-- schema on both SQL backends.
SELECT 1;
