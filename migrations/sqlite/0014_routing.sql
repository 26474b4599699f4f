-- Routing (rfcs/0011): sessions and handler versions, the same schema
-- version as migrations/postgres/0014_routing.sql.
--
-- An execution may name a session and a handler version. `version` is the
-- text as given; `version_key` its sortable form (four zero-padded
-- numbers), which a claim compares with its range's ends.
ALTER TABLE executions ADD COLUMN session TEXT;
ALTER TABLE executions ADD COLUMN version TEXT;
ALTER TABLE executions ADD COLUMN version_key TEXT;

-- An idempotency key deduplicates within its session (no session counts
-- as one).
DROP INDEX executions_idempotency;
CREATE UNIQUE INDEX executions_idempotency
    ON executions (namespace, lane, COALESCE(session, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A list filtered by key (in any session) still goes straight to it.
CREATE INDEX executions_by_idempotency_key
    ON executions (namespace, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The lock of a session: the worker whose claims alone take its work
-- until `expires_at` (ms), extended by its claims and renews of the
-- session's work to `idle_ms` past them (or its lease's end, if later).
-- `partition` is the session's partition (where its work lives), so the
-- reclaim pass of a partition drops its lapsed locks.
CREATE TABLE sessions (
    namespace  TEXT    NOT NULL,
    session    TEXT    NOT NULL,
    partition  INTEGER NOT NULL,
    worker_id  TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    idle_ms    INTEGER NOT NULL CHECK (idle_ms > 0),
    PRIMARY KEY (namespace, session)
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_lapse ON sessions (partition, expires_at);

-- The version range of a worker's last claim (`min..max`, an open end
-- empty; '' for none).
ALTER TABLE workers ADD COLUMN versions TEXT NOT NULL DEFAULT '';
