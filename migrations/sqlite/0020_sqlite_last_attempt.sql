-- 0020: an execution's last attempt lives in its own row (as Postgres
-- migration 0019 did there).
--
-- Every claim inserted a row into `attempts` and every completion updated
-- it again, although the execution row both statements rewrite anyway
-- already carried the running attempt's number, worker and nonce. Most
-- executions run once, so most of those rows only repeated the execution
-- row, and on SQLite each cost the one writer a b-tree insert, an update
-- and, for completions, a statement of its own.
--
-- Now the attempt numbered `attempts` (the last one, open or ended) is kept
-- in the execution row's `attempt_*` columns, and `attempts` holds only the
-- earlier ones (and every attempt of an execution that had finished before
-- this migration; see below). Closing an attempt (complete, fail, reclaim,
-- cancel, expire, pause, release, suspend, block) writes the row's columns.
--
-- A claim that opens attempt n + 1 overwrites the columns, so attempt n is
-- first copied into `attempts` by the trigger `executions_attempt_archived`
-- (it sees the row before the update). A trigger rather than a statement
-- of the claim's: the claim stays one statement, and the copy costs only
-- the executions that retry; no other writer changes `attempts` of a row.
--
-- `attempt_history` is the whole history: the rows of `attempts` and the
-- last attempt of each execution, with the columns of `attempts`. SQLite
-- pushes a reader's filter on `execution_uuid` into both halves (a primary
-- key probe each).
--
-- This migration moves the last attempt of every unfinished execution into
-- its row and deletes it from `attempts`, so the running ones close theirs
-- where every writer now looks. Finished executions keep all their
-- attempts in `attempts` and nothing in the row: none has an open attempt,
-- `attempt_history` reads them whole, and a replayed one starts its next
-- attempt in the row with nothing to copy out.
--
-- The rules `attempts` holds for an attempt row hold for the one in the
-- execution row: a worker, a nonce and a start exactly when there is an
-- attempt at all, an outcome exactly when it ended, a known outcome.
ALTER TABLE executions ADD COLUMN attempt_worker TEXT;
ALTER TABLE executions ADD COLUMN attempt_nonce INTEGER
    CHECK ((attempt_nonce IS NULL) = (attempt_worker IS NULL));
ALTER TABLE executions ADD COLUMN attempt_started_at INTEGER
    CHECK ((attempt_started_at IS NULL) = (attempt_worker IS NULL));
ALTER TABLE executions ADD COLUMN attempt_ended_at INTEGER;
ALTER TABLE executions ADD COLUMN attempt_outcome TEXT
    CHECK (attempt_outcome IN
               ('completed', 'failed', 'lease_expired', 'cancelled', 'expired', 'released',
                'paused')
           AND (attempt_outcome IS NULL) = (attempt_ended_at IS NULL));
ALTER TABLE executions ADD COLUMN attempt_error TEXT;

UPDATE executions
SET attempt_worker = a.worker_id,
    attempt_nonce = a.nonce,
    attempt_started_at = a.started_at,
    attempt_ended_at = a.ended_at,
    attempt_outcome = a.outcome,
    attempt_error = a.error
FROM attempts a
WHERE a.execution_uuid = executions.uuid AND a.number = executions.attempts
  AND executions.finished_at IS NULL AND executions.attempt_started_at IS NULL;

DELETE FROM attempts
WHERE EXISTS (SELECT 1 FROM executions e
              WHERE e.uuid = attempts.execution_uuid AND e.attempts = attempts.number
                AND e.attempt_started_at IS NOT NULL);

CREATE TRIGGER executions_attempt_archived AFTER UPDATE OF attempt_started_at ON executions
WHEN old.attempt_started_at IS NOT NULL AND new.attempts > old.attempts
BEGIN
    INSERT INTO attempts (execution_uuid, number, worker_id, nonce, started_at, ended_at,
                          outcome, error)
    VALUES (old.uuid, old.attempts, old.attempt_worker, old.attempt_nonce,
            old.attempt_started_at, old.attempt_ended_at, old.attempt_outcome,
            old.attempt_error);
END;

CREATE VIEW attempt_history AS
SELECT execution_uuid, number, worker_id, nonce, started_at, ended_at, outcome, error
FROM attempts
UNION ALL
SELECT uuid, attempts, attempt_worker, attempt_nonce, attempt_started_at, attempt_ended_at,
       attempt_outcome, attempt_error
FROM executions
WHERE attempt_started_at IS NOT NULL;
