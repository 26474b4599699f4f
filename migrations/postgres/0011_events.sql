-- Event history (rfcs/0010), the same schema version as
-- migrations/sqlite/0011_events.sql. Every change of an execution's state
-- is recorded by the triggers below, inside the statement that makes it
-- (so in its transaction, whatever code path made it): the states before
-- and after, the time of the change (`updated_at`, the engine's clock),
-- the attempt count, the worker that held or took the lease, and a detail
-- (the cancel reason, or an error the change wrote). Events that change no
-- state carry their `kind` (a delivered signal, by trigger; an operator's
-- edit, written by the editing transaction). The name of a transition is
-- decided when the history is read (`rules::event_kind`). An execution
-- keeps its first event and its last 199; they go with it when it is
-- trimmed or deleted (sql/trim.sql).
--
-- The history is kept per namespace, for the executions created while it
-- is on (`namespace_history` lists those namespaces; `executions.history`
-- is the setting an execution was created with, written by the create
-- statement, sql/create.sql): off, nothing is written, and the triggers
-- cost the test of that column in their WHEN clauses, which Postgres
-- evaluates before it queues a call of the function (the trigger of
-- signals, which are rare, tests it in its function). Executions created
-- before this migration have it off. Adding the column with a constant
-- default rewrites no row.
ALTER TABLE executions ADD COLUMN history boolean NOT NULL DEFAULT false;

CREATE TABLE namespace_history (
    namespace text PRIMARY KEY
);

-- The events, partitioned like `attempts` and `signals` (the same 8
-- children, child k holding the Baton partitions p with p % 8 = k), so an
-- execution's events sit in the same-numbered child as its row; the
-- primary key holds the partition column, as an index on a partitioned
-- table must (the uuid decides the partition, so the uniqueness is the
-- one of (uuid, seq)), and serves the reads, the next number (the highest
-- one of the execution) and the bound (a range of it).
CREATE TABLE events (
    partition  smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid       uuid     NOT NULL,
    seq        bigint   NOT NULL CHECK (seq >= 1),
    at         bigint   NOT NULL,
    kind       text,
    from_state text CONSTRAINT events_from_known CHECK (from_state IN
                   ('waiting', 'delayed', 'blocked', 'running', 'suspended', 'paused',
                    'completed', 'failed', 'cancelled', 'expired', 'skipped')),
    to_state   text CONSTRAINT events_to_known CHECK (to_state IN
                   ('waiting', 'delayed', 'blocked', 'running', 'suspended', 'paused',
                    'completed', 'failed', 'cancelled', 'expired', 'skipped')),
    attempt    integer  NOT NULL CHECK (attempt >= 0),
    worker_id  text,
    detail     text,
    PRIMARY KEY (partition, uuid, seq),
    CHECK (kind IS NOT NULL OR to_state IS NOT NULL)
) PARTITION BY LIST (partition);

DO $$
DECLARE
    k integer;
    parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ', ') INTO parts FROM generate_series(k, 1023, 8) AS p;
        EXECUTE format('CREATE TABLE events_%s PARTITION OF events FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;

-- The number of an execution's next event is one past its highest (the
-- bound never drops the newest, so a number is never reused). Every writer
-- of an event holds the execution's row lock when it writes one: a change
-- of state updates the row, a signal is stored after `SELECT … FOR UPDATE`
-- of it, an edit updates it. So two events of one execution are numbered
-- one after the other, and at read committed the later one's statement
-- sees the earlier one committed.
--
-- The functions name tables unqualified: they resolve in the session's
-- search_path, which every Baton connection sets to its deployment's
-- schema, as every statement of the backend does. (Migration 0008's
-- trigger names its channel from TG_TABLE_SCHEMA, a value; a table named
-- so would take a dynamic EXECUTE per row.)
CREATE FUNCTION baton_event_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (partition, uuid, seq, at, to_state, attempt)
    VALUES (NEW.partition, NEW.uuid, 1, NEW.created_at, NEW.state, NEW.attempts);
    RETURN NULL;
END
$$;

CREATE FUNCTION baton_event_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (partition, uuid, seq, at, from_state, to_state, attempt, worker_id, detail)
    SELECT NEW.partition, NEW.uuid, COALESCE(MAX(e.seq), 0) + 1, NEW.updated_at,
           OLD.state, NEW.state, NEW.attempts, COALESCE(NEW.worker_id, OLD.worker_id),
           left(CASE
                    WHEN NEW.state = 'cancelled' THEN NEW.cancel_reason
                    WHEN NEW.last_error IS DISTINCT FROM OLD.last_error THEN NEW.last_error
                END, 1024)
    FROM events e
    WHERE e.partition = NEW.partition AND e.uuid = NEW.uuid;
    RETURN NULL;
END
$$;

-- Only for an execution that keeps its history (none for one gone).
CREATE FUNCTION baton_event_signalled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (partition, uuid, seq, at, kind, attempt, detail)
    SELECT NEW.partition, NEW.uuid,
           (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM events e
            WHERE e.partition = NEW.partition AND e.uuid = NEW.uuid),
           NEW.received_at, 'signalled', x.attempts, left(NEW.name, 1024)
    FROM executions x
    WHERE x.partition = NEW.partition AND x.uuid = NEW.uuid AND x.history;
    RETURN NULL;
END
$$;

-- Keeps the first event and the last 199. Only an insert past the bound
-- queues a call (the WHEN clause); numbers run on without gaps, so each
-- call finds one event to drop.
CREATE FUNCTION baton_event_bound() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events
    WHERE partition = NEW.partition AND uuid = NEW.uuid
      AND seq > 1 AND seq <= NEW.seq - 199;
    RETURN NULL;
END
$$;

-- Row triggers on the partitioned parents are cloned to every child. Only
-- an execution that keeps its history queues a call (tested first), and
-- of its updates only one that changes the state.
CREATE TRIGGER events_created
    AFTER INSERT ON executions
    FOR EACH ROW
    WHEN (NEW.history)
    EXECUTE FUNCTION baton_event_created();

CREATE TRIGGER events_moved
    AFTER UPDATE OF state ON executions
    FOR EACH ROW
    WHEN (NEW.history AND NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION baton_event_moved();

CREATE TRIGGER events_signalled
    AFTER INSERT ON signals
    FOR EACH ROW
    EXECUTE FUNCTION baton_event_signalled();

CREATE TRIGGER events_bound
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.seq > 200)
    EXECUTE FUNCTION baton_event_bound();
