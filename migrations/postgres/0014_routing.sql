-- Routing: sessions and handler versions, the same schema version as
-- migrations/sqlite/0014_routing.sql.
--
-- An execution may name a session (`session`) and the handler version it
-- was written for (`version`, the text as given, and `version_key`, its
-- sortable key, `Version::sort_key`, in which text order is version
-- order); all NULL when absent, and for every execution from before. A
-- claim compares `version_key` with its range's keys while it reads the
-- claim index: no index is added, a versioned row is filtered, never
-- sought.
ALTER TABLE executions
    ADD COLUMN session     text,
    ADD COLUMN version     text,
    ADD COLUMN version_key text;

-- Who holds each session: the worker whose claims alone take the
-- session's work until `expires_at`, and how long it keeps the session
-- idle (`idle_ms`, from the claim that took the lock), which a renew of
-- the session's work extends it by. `partition` is the one the session's
-- executions are created in (`rules::session_partition`): the reclaim
-- pass of that partition drops the lapsed locks, read by
-- `sessions_lapsed`. Claims take and extend a lock with an upsert whose
-- conflict clause re-reads the latest row (src/claim.rs), so two
-- concurrent claimers never both hold one session.
CREATE TABLE sessions (
    namespace  text     NOT NULL,
    session    text     NOT NULL,
    partition  smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    worker_id  text     NOT NULL,
    expires_at bigint   NOT NULL,
    idle_ms    bigint   NOT NULL CHECK (idle_ms > 0),
    PRIMARY KEY (namespace, session)
);

CREATE INDEX sessions_lapsed ON sessions (partition, expires_at);

-- The handler versions of a worker's last claim
-- (`VersionRange::to_stored`); empty for every version, as a worker
-- recorded before reads.
ALTER TABLE workers ADD COLUMN versions text NOT NULL DEFAULT '';

-- Idempotency keys are scoped by session as well: the same key in two
-- sessions names two executions. No session is stored as '' so the key
-- stays a primary key (every key from before belongs to no session).
ALTER TABLE idempotency_keys ADD COLUMN session text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (namespace, lane, session, key);
