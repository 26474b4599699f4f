-- The durable state machine (rfcs/0006): the states the durable layer adds
-- (`blocked`, `suspended`, `paused`, and the terminal `skipped`), the attempt
-- outcome `released` (a lease handed back to wait), and two counters: how
-- many of an execution's children are unfinished (`open_children`), and how
-- many of its attempts ended by a release (`released`; the retry policy
-- counts failures, not waits).
--
-- The CHECK constraints that list states are replaced (found by what they
-- say, since their names were generated).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conrelid::regclass AS tbl, conname
        FROM pg_constraint
        WHERE contype = 'c'
          AND conrelid IN ('executions'::regclass, 'attempts'::regclass)
          AND pg_get_constraintdef(oid) LIKE '%''expired''%'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
    END LOOP;
END
$$;

ALTER TABLE executions
    ADD CONSTRAINT executions_state_known CHECK (state IN
        ('waiting', 'delayed', 'blocked', 'running', 'suspended', 'paused',
         'completed', 'failed', 'cancelled', 'expired', 'skipped')),
    ADD CONSTRAINT executions_finished_when_terminal CHECK
        ((state IN ('completed', 'failed', 'cancelled', 'expired', 'skipped')) = (finished_at IS NOT NULL)),
    ADD COLUMN open_children integer NOT NULL DEFAULT 0 CHECK (open_children >= 0),
    ADD COLUMN released integer NOT NULL DEFAULT 0 CHECK (released >= 0 AND released <= attempts);

ALTER TABLE attempts
    ADD CONSTRAINT attempts_outcome_known CHECK (outcome IN
        ('completed', 'failed', 'lease_expired', 'cancelled', 'expired', 'released'));

-- Children created before this version count as open for their parent until
-- they finish (a parent is named by the text form of its id).
UPDATE executions e SET open_children = c.n
FROM (SELECT parent, count(*) AS n FROM executions
      WHERE parent IS NOT NULL AND finished_at IS NULL GROUP BY parent) AS c
WHERE c.parent = '{p:' || e.partition || '}-' || e.uuid::text;

-- Members whose root was trimmed before them (retention did not know flows
-- before version 3) become roots of their own, so retention, which now
-- trims members only with their root, still reaches them.
UPDATE executions e SET root = NULL
WHERE e.root IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM executions r
    WHERE r.partition = e.partition AND r.uuid = split_part(e.root, '}-', 2)::uuid);
