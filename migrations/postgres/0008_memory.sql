-- Memory (rfcs/0008): an execution's key-value state, its custom status
-- (with the version a reader follows) and its progress frames (numbered
-- from 1, the newest kept; `progress_seq` is the last number given, so a
-- number is never reused when old frames are dropped). `state_count`
-- bounds the keys without counting rows. The same schema version as
-- migrations/sqlite/0008_memory.sql.
ALTER TABLE executions
    ADD COLUMN custom_status  bytea,
    ADD COLUMN status_version bigint  NOT NULL DEFAULT 0 CHECK (status_version >= 0),
    ADD COLUMN progress_seq   bigint  NOT NULL DEFAULT 0 CHECK (progress_seq >= 0),
    ADD COLUMN state_count    integer NOT NULL DEFAULT 0 CHECK (state_count >= 0),
    -- Until when (engine clock, milliseconds) a reader may be waiting for
    -- this execution to change (`wait_for_change`); NULL while nobody
    -- follows it, so an unwatched execution's changes send nothing. Set by
    -- the waiting reader before it reads; cleared once past by the writers
    -- of status and progress, the frequent changes (see memory.rs).
    ADD COLUMN watched_until  bigint;

-- The key-value state of an execution, one row per key. Partitioned like
-- `steps` (the same 8 children, child k holding the Baton partitions p with
-- p % 8 = k); the primary key holds the partition column, as an index on a
-- partitioned table must. Keys collate as bytes ("C"), so the primary key
-- index gives `state` its by-key order, the order of the other backends
-- (and of `StateKey`'s `Ord`). Deleted with their execution by
-- trim_terminal.
CREATE TABLE execution_state (
    partition  smallint         NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid       uuid             NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea            NOT NULL,
    attempt    integer          NOT NULL CHECK (attempt >= 1),
    updated_at bigint           NOT NULL,
    PRIMARY KEY (partition, uuid, key)
) PARTITION BY LIST (partition);

-- The kept progress frames of an execution, by number; the append that
-- passes Limits::max_progress_frames deletes the oldest (a range of the
-- primary key). Partitioned and trimmed like `execution_state`.
CREATE TABLE progress_frames (
    partition smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid      uuid     NOT NULL,
    seq       bigint   NOT NULL CHECK (seq >= 1),
    at        bigint   NOT NULL,
    attempt   integer  NOT NULL CHECK (attempt >= 1),
    frame     bytea    NOT NULL,
    PRIMARY KEY (partition, uuid, seq)
) PARTITION BY LIST (partition);

DO $$
DECLARE
    k integer;
    parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ', ') INTO parts FROM generate_series(k, 1023, 8) AS p;
        EXECUTE format('CREATE TABLE execution_state_%s PARTITION OF execution_state FOR VALUES IN (%s)', k, parts);
        EXECUTE format('CREATE TABLE progress_frames_%s PARTITION OF progress_frames FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;

-- Announcing changes to waiting readers. A watched execution (see
-- `watched_until`) that changes what a reader follows (its state, custom
-- status or progress; `ChangeMark` in baton-core) or is deleted (trimmed)
-- sends its id on the channel `baton_changed_<schema>`, in the form
-- `ExecutionId` prints and parses (`{p:N}-<uuid>`). The channel is derived
-- from the schema the trigger fires in, which is the backend's configured
-- schema (the only per-deployment setting a channel needs, and the one
-- the Rust side derives the same name from), so nothing has to be written
-- at connect and deployments sharing a database stay apart. NOTIFY is
-- delivered at commit, never for a rolled-back change, and identical
-- notifications of one transaction are delivered once. The WHEN clauses
-- keep unwatched executions free: no trigger call is queued for them.
CREATE FUNCTION baton_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    PERFORM pg_notify('baton_changed_' || TG_TABLE_SCHEMA,
                      '{p:' || changed.partition || '}-' || changed.uuid::text);
    RETURN NULL;
END
$$;

-- Row triggers on the partitioned parent are cloned to every child.
CREATE TRIGGER executions_changed
    AFTER UPDATE ON executions
    FOR EACH ROW
    WHEN (NEW.watched_until IS NOT NULL
          AND (NEW.state IS DISTINCT FROM OLD.state
               OR NEW.status_version <> OLD.status_version
               OR NEW.progress_seq <> OLD.progress_seq))
    EXECUTE FUNCTION baton_announce_change();

CREATE TRIGGER executions_trimmed
    AFTER DELETE ON executions
    FOR EACH ROW
    WHEN (OLD.watched_until IS NOT NULL)
    EXECUTE FUNCTION baton_announce_change();
