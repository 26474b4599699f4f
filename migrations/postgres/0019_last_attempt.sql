-- 0019: an execution's last attempt lives in its own row.
--
-- Every claim inserted a row into `attempts` (a heap tuple, a primary-key
-- entry, two WAL records) and every completion updated it again, although
-- the execution row those statements rewrite anyway already carried the
-- running attempt's number, worker and nonce. Most executions run once, so
-- most of those attempt rows only repeated what the execution row said.
--
-- Now the attempt numbered `attempts` (the last one, open or ended) is kept
-- in the execution row's `attempt_*` columns, and `attempts` holds only the
-- earlier ones (and every attempt of an execution that had finished before
-- this migration; see below): a claim that starts attempt n + 1 first copies attempt n
-- from the row into `attempts`, in the same statement. An execution that
-- runs once writes no attempt row at all; one that retries writes one per
-- retry, as before. Closing an attempt (complete, fail, reclaim, cancel,
-- expire, pause, release) is part of the update of the execution row that
-- every one of those writers already makes.
--
-- `attempt_history` is the whole history: the rows of `attempts` and the
-- last attempt of each execution, with the columns of `attempts`. Readers
-- filter it by execution, and Postgres pushes the filter into both halves
-- (a primary-key probe each).
--
-- This migration moves the last attempt of every unfinished execution
-- into its row and deletes it from `attempts`, so the running ones close
-- theirs where every writer now looks. Finished executions keep all their
-- attempts in `attempts` and nothing in the row: none of them has an open
-- attempt, `attempt_history` reads them whole, and a replayed one starts
-- its next attempt in the row with nothing to copy out. So the migration
-- rewrites only the live executions, not the finished history. Running it
-- again changes nothing.
ALTER TABLE executions
    ADD COLUMN IF NOT EXISTS attempt_worker     text,
    ADD COLUMN IF NOT EXISTS attempt_nonce      bigint,
    ADD COLUMN IF NOT EXISTS attempt_started_at bigint,
    ADD COLUMN IF NOT EXISTS attempt_ended_at   bigint,
    ADD COLUMN IF NOT EXISTS attempt_outcome    text,
    ADD COLUMN IF NOT EXISTS attempt_error      text;

UPDATE executions e
SET attempt_worker = a.worker_id,
    attempt_nonce = a.nonce,
    attempt_started_at = a.started_at,
    attempt_ended_at = a.ended_at,
    attempt_outcome = a.outcome,
    attempt_error = a.error
FROM attempts a
WHERE a.partition = e.partition AND a.execution_uuid = e.uuid AND a.number = e.attempts
  AND e.finished_at IS NULL AND e.attempt_started_at IS NULL;

DELETE FROM attempts a
USING executions e
WHERE a.partition = e.partition AND a.execution_uuid = e.uuid AND a.number = e.attempts
  AND e.attempt_started_at IS NOT NULL;

-- The rules `attempts_valid` holds for an attempt row, for the one in the
-- execution row: an outcome exactly when it ended, a known outcome, and a
-- worker, a nonce and a start exactly when there is an attempt at all.
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_valid;
ALTER TABLE executions ADD CONSTRAINT executions_valid CHECK (
    state = ANY ('{waiting,delayed,blocked,running,suspended,paused,completed,failed,cancelled,expired,skipped}'::text[])
    AND (state = 'running') = (lease_expires_at IS NOT NULL AND lease_nonce IS NOT NULL AND worker_id IS NOT NULL)
    AND (state = ANY ('{completed,failed,cancelled,expired,skipped}'::text[])) = (finished_at IS NOT NULL)
    AND (state <> 'delayed' OR run_at IS NOT NULL)
    AND (state <> 'paused' OR paused_from IS NOT NULL)
    AND (result IS NULL OR state = 'completed')
    AND (attempt_started_at IS NULL) = (attempt_worker IS NULL)
    AND (attempt_started_at IS NULL) = (attempt_nonce IS NULL)
    AND (attempt_outcome IS NULL) = (attempt_ended_at IS NULL)
    AND attempt_outcome = ANY ('{completed,failed,lease_expired,cancelled,expired,released,paused}'::text[])
);

CREATE OR REPLACE VIEW attempt_history AS
SELECT partition, execution_uuid, number, worker_id, nonce, started_at, ended_at, outcome, error
FROM attempts
UNION ALL
SELECT partition, uuid, attempts, attempt_worker, attempt_nonce, attempt_started_at,
       attempt_ended_at, attempt_outcome, attempt_error
FROM executions
WHERE attempt_started_at IS NOT NULL;
