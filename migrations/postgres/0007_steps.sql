-- Memory: checkpointed steps (rfcs/0008). How many steps an execution
-- recorded, so a new step is judged against Limits::max_steps without a
-- count, and a claim reads steps only for executions that have some.
ALTER TABLE executions
    ADD COLUMN step_count integer NOT NULL DEFAULT 0 CHECK (step_count >= 0);

-- The steps of an execution, one row per name: `done` with its final
-- output, or `failed` with its last error and how many failed records it
-- had (a done step after failures keeps them and the last error). `attempt`
-- is the attempt that wrote the current status. Partitioned like `attempts`
-- and `signals` (the same 8 children, child k holding the Baton partitions
-- p with p % 8 = k), so an execution's steps sit in the same-numbered child
-- as its row; the primary key holds the partition column, as an index on a
-- partitioned table must (the uuid decides the partition, so the
-- uniqueness is the one of (uuid, name)). Names collate as bytes ("C"), so
-- the primary key index gives `steps` its by-name order, the order of the
-- other backends (and of `StepName`'s `Ord`), whatever the database's
-- collation. Deleted with their execution by trim_terminal.
CREATE TABLE steps (
    partition   smallint           NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid        uuid               NOT NULL,
    name        text COLLATE "C"   NOT NULL,
    status      text               NOT NULL CHECK (status IN ('done', 'failed')),
    output      bytea,
    error       text,
    attempt     integer            NOT NULL CHECK (attempt >= 1),
    failures    integer            NOT NULL CHECK (failures >= 0),
    recorded_at bigint             NOT NULL,
    PRIMARY KEY (partition, uuid, name),
    -- A done step has its output, a failed one none but its error and at
    -- least the failure that made it failed.
    CHECK ((status = 'done') = (output IS NOT NULL)),
    CHECK (status = 'done' OR (error IS NOT NULL AND failures >= 1))
) PARTITION BY LIST (partition);

DO $$
DECLARE
    k integer;
    parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ', ') INTO parts FROM generate_series(k, 1023, 8) AS p;
        EXECUTE format('CREATE TABLE steps_%s PARTITION OF steps FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;
