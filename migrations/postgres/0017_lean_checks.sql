-- 0017: one CHECK constraint per hot table, holding only the rules that
-- tie columns together.
--
-- Postgres builds the expressions of a table's CHECK constraints again for
-- every statement and every partition child that statement writes: it
-- parses each stored constraint from its text and plans it. `executions`
-- had 27 constraints (17.7 KB of stored expression per child) and
-- `attempts` 4, and a claim, a submission or a batch of completes writes
-- rows in all 8 children of both, so that work was repeated 16 times per
-- statement: about a tenth of the server's CPU in `steady`, paid however
-- many rows the statement wrote.
--
-- What stays is what says a row's state agrees with its other columns: a
-- known state; a lease (worker, nonce, expiry) exactly while running; a
-- finish time exactly in the end states; a due time while delayed; where
-- it came from while paused; a result only when completed; and an
-- attempt's outcome known and given exactly when it ended. They are
-- written as one constraint per table, with the state lists as array
-- constants, so each is a few KB to parse.
--
-- What goes are the single-column ranges and shapes (counters at least
-- zero, `max_attempts` at least one, backoff bounds, `tags` an object,
-- `required_caps` an array, the enumerations of `paused_from`,
-- `on_timeout` and `wait_condition`, the partition number's range). Only
-- Baton's statements write these columns, from values `baton-core`
-- validated (`ExecutionSpec`, the retry and wait rules), and the
-- conformance suite checks them on every backend; the partition range is
-- still enforced by the children's bounds, since a row no child lists has
-- nowhere to go.
--
-- AND in a CHECK keeps the meaning of separate constraints: a row fails
-- when any part is false, and a part that is NULL (a column not set) lets
-- it pass, as it did alone.
--
-- The old constraints are found in the catalog (several have generated
-- names) and dropped on the parents, which drops them on the children.
-- Adding the new ones reads every row once.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conrelid::regclass AS tbl, conname
        FROM pg_constraint
        WHERE contype = 'c'
          AND conrelid IN ('executions'::regclass, 'attempts'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
    END LOOP;
END
$$;

ALTER TABLE executions ADD CONSTRAINT executions_valid CHECK (
    state = ANY ('{waiting,delayed,blocked,running,suspended,paused,completed,failed,cancelled,expired,skipped}'::text[])
    AND (state = 'running') = (lease_expires_at IS NOT NULL AND lease_nonce IS NOT NULL AND worker_id IS NOT NULL)
    AND (state = ANY ('{completed,failed,cancelled,expired,skipped}'::text[])) = (finished_at IS NOT NULL)
    AND (state <> 'delayed' OR run_at IS NOT NULL)
    AND (state <> 'paused' OR paused_from IS NOT NULL)
    AND (result IS NULL OR state = 'completed')
);

ALTER TABLE attempts ADD CONSTRAINT attempts_valid CHECK (
    (outcome IS NULL) = (ended_at IS NULL)
    AND outcome = ANY ('{completed,failed,lease_expired,cancelled,expired,released,paused}'::text[])
);
