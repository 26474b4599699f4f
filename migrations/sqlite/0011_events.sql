-- Event history (rfcs/0010). Every change of an execution's state is
-- recorded by the triggers below, inside the statement that makes it (so
-- in its transaction, whatever code path made it): the states before and
-- after, the time of the change (`updated_at`), the attempt count, the
-- worker that held or took the lease, and a detail (the cancel reason, or
-- an error the change wrote). Events that change no state carry their
-- `kind` (a delivered signal, by trigger; an operator's edit, written by
-- the editing statement's transaction). The name of a transition is
-- decided when the history is read (`rules::event_kind`). An execution
-- keeps its first event and its last 199; they go with it when it is
-- trimmed or deleted.
--
-- The history is kept per namespace, for the executions created while it
-- is on (`namespace_history` lists those namespaces; `executions.history`
-- is the setting an execution was created with): off, nothing is written
-- and the triggers cost a test of that column. Executions created before
-- this migration have it off.
ALTER TABLE executions ADD COLUMN history INTEGER NOT NULL DEFAULT 0
    CHECK (history IN (0, 1));

CREATE TABLE namespace_history (
    namespace TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
    uuid       BLOB    NOT NULL CHECK (length(uuid) = 16),
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    at         INTEGER NOT NULL,
    kind       TEXT,
    from_state TEXT,
    to_state   TEXT,
    attempt    INTEGER NOT NULL CHECK (attempt >= 0),
    worker_id  TEXT,
    detail     TEXT,
    PRIMARY KEY (uuid, seq),
    CHECK (kind IS NOT NULL OR to_state IS NOT NULL)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER events_created AFTER INSERT ON executions
WHEN new.history = 1
BEGIN
    INSERT INTO events (uuid, seq, at, to_state, attempt)
    VALUES (new.uuid, 1, new.created_at, new.state, new.attempts);
END;

CREATE TRIGGER events_moved AFTER UPDATE OF state ON executions
WHEN new.history = 1 AND old.state IS NOT new.state
BEGIN
    INSERT INTO events (uuid, seq, at, from_state, to_state, attempt, worker_id, detail)
    VALUES (
        new.uuid,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE uuid = new.uuid),
        new.updated_at,
        old.state,
        new.state,
        new.attempts,
        COALESCE(new.worker_id, old.worker_id),
        substr(CASE
            WHEN new.state = 'cancelled' THEN new.cancel_reason
            WHEN new.last_error IS NOT old.last_error THEN new.last_error
        END, 1, 1024)
    );
END;

CREATE TRIGGER events_signalled AFTER INSERT ON signals
WHEN (SELECT history FROM executions WHERE uuid = new.uuid) = 1
BEGIN
    INSERT INTO events (uuid, seq, at, kind, attempt, detail)
    VALUES (
        new.uuid,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE uuid = new.uuid),
        new.received_at,
        'signalled',
        COALESCE((SELECT attempts FROM executions WHERE uuid = new.uuid), 0),
        new.name
    );
END;

-- The bound: only an insert past it deletes.
CREATE TRIGGER events_bound AFTER INSERT ON events
WHEN new.seq > 200
BEGIN
    DELETE FROM events WHERE uuid = new.uuid AND seq > 1 AND seq <= new.seq - 199;
END;
