-- Waiting without a worker (rfcs/0007): the wait of a suspended execution
-- (its waitpoints joined by commas, empty for a sleep; its condition,
-- timeout instant and timeout policy), the log of the waits it ended (one
-- letter each: `s` signalled, `t` timed out), and how many signals it holds.
-- The wait columns of an ended wait may remain: they count only while the
-- execution is `suspended` (a state migration 0004 already allows), and
-- each suspend overwrites all of them.
ALTER TABLE executions
    ADD COLUMN wait_points text,
    ADD COLUMN wait_condition text CHECK (wait_condition IN ('all', 'any')),
    ADD COLUMN wait_timeout_at bigint,
    ADD COLUMN on_timeout text CHECK (on_timeout IN ('resume', 'fail', 'cancel')),
    ADD COLUMN wait_log text NOT NULL DEFAULT '',
    ADD COLUMN signal_count integer NOT NULL DEFAULT 0 CHECK (signal_count >= 0);

-- The timeout pass: suspended executions by the instant their wait times
-- out; (partition, due column, uuid) is both the scan order and the
-- next-due lookup, read from the index alone, like the other passes.
CREATE INDEX executions_timeouts
    ON executions (partition, wait_timeout_at, uuid)
    WHERE state = 'suspended' AND wait_timeout_at IS NOT NULL;

-- Signals an execution holds, numbered from 1 in arrival order; `wait` is
-- the number of the wait that consumed it (NULL while buffered). Partitioned
-- like `attempts` (the same 8 children, child k holding the Baton partitions
-- p with p % 8 = k), so an execution's signals sit in the same-numbered
-- child as its row, and the unique indexes hold the partition column, as
-- an index on a partitioned table must (the uuid decides the partition, so
-- the uniqueness is the one of (uuid, seq) and (uuid, idempotency_key)).
-- Deleted with their execution by trim_terminal.
CREATE TABLE signals (
    partition       smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid            uuid     NOT NULL,
    seq             integer  NOT NULL CHECK (seq >= 1),
    name            text     NOT NULL,
    payload         bytea    NOT NULL,
    idempotency_key text,
    received_at     bigint   NOT NULL,
    wait            integer  CHECK (wait >= 1),
    PRIMARY KEY (partition, uuid, seq)
) PARTITION BY LIST (partition);

DO $$
DECLARE
    k integer;
    parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ', ') INTO parts FROM generate_series(k, 1023, 8) AS p;
        EXECUTE format('CREATE TABLE signals_%s PARTITION OF signals FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;

CREATE UNIQUE INDEX signals_idempotency
    ON signals (partition, uuid, idempotency_key) WHERE idempotency_key IS NOT NULL;
