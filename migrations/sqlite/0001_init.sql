-- Baton schema for SQLite, version 1.
--
-- Every instant is INTEGER milliseconds since the Unix epoch (UTC), so the
-- values read back are exactly those the engine computed. Every column that
-- holds a state carries a CHECK constraint listing the canonical literals;
-- the normalising read adapter (src/read.rs) still verifies each value.

CREATE TABLE baton_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE executions (
    uuid               BLOB    PRIMARY KEY CHECK (length(uuid) = 16),
    partition          INTEGER NOT NULL CHECK (partition >= 0),
    namespace          TEXT    NOT NULL,
    lane               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN
                           ('waiting', 'delayed', 'running', 'completed', 'failed', 'cancelled', 'expired')),
    priority           INTEGER NOT NULL,
    payload            BLOB    NOT NULL,
    tags               TEXT    NOT NULL,  -- JSON object, keys sorted
    required_caps      TEXT    NOT NULL,  -- JSON array, sorted
    attempts           INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    backoff_initial_ms INTEGER NOT NULL CHECK (backoff_initial_ms >= 0),
    backoff_max_ms     INTEGER NOT NULL CHECK (backoff_max_ms >= backoff_initial_ms),
    backoff_multiplier REAL    NOT NULL CHECK (backoff_multiplier >= 1.0),
    backoff_jitter     INTEGER NOT NULL CHECK (backoff_jitter IN (0, 1)),
    idempotency_key    TEXT,
    parent             TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    run_at             INTEGER,
    -- When the execution last became eligible: the claim order within a priority.
    ready_at           INTEGER NOT NULL,
    deadline           INTEGER,
    finished_at        INTEGER,
    worker_id          TEXT,
    lease_nonce        INTEGER,
    lease_expires_at   INTEGER,
    result             BLOB,
    last_error         TEXT,
    cancel_reason      TEXT,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL AND lease_nonce IS NOT NULL AND worker_id IS NOT NULL)),
    CHECK ((state IN ('completed', 'failed', 'cancelled', 'expired')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'delayed') <= (run_at IS NOT NULL)),
    CHECK ((result IS NOT NULL) <= (state = 'completed'))
) STRICT;

-- Dedup of submissions per namespace and lane.
CREATE UNIQUE INDEX executions_idempotency
    ON executions (namespace, lane, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Claims: highest priority, then earliest eligible, then id.
CREATE INDEX executions_claim
    ON executions (namespace, lane, priority DESC, ready_at, uuid) WHERE state = 'waiting';
-- Scheduler passes, one range read per partition each.
CREATE INDEX executions_due
    ON executions (partition, run_at) WHERE state = 'delayed';
CREATE INDEX executions_leases
    ON executions (partition, lease_expires_at) WHERE state = 'running';
CREATE INDEX executions_deadlines
    ON executions (partition, deadline) WHERE deadline IS NOT NULL AND finished_at IS NULL;
CREATE INDEX executions_retention
    ON executions (partition, finished_at) WHERE finished_at IS NOT NULL;
-- list and counts.
CREATE INDEX executions_by_namespace ON executions (namespace, uuid);
CREATE INDEX executions_by_lane_state ON executions (namespace, lane, state);

CREATE TABLE attempts (
    execution_uuid   BLOB    NOT NULL,
    number           INTEGER NOT NULL CHECK (number >= 1),
    worker_id        TEXT    NOT NULL,
    nonce            INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    outcome          TEXT CHECK (outcome IN ('completed', 'failed', 'lease_expired', 'cancelled', 'expired')),
    error            TEXT,
    PRIMARY KEY (execution_uuid, number),
    CHECK ((outcome IS NULL) = (ended_at IS NULL))
) STRICT, WITHOUT ROWID;

-- Tag filter for list: one row per tag.
CREATE TABLE execution_tags (
    execution_uuid BLOB NOT NULL,
    namespace      TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (execution_uuid, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX execution_tags_lookup ON execution_tags (namespace, key, value, execution_uuid);

-- Engine processes alive, and which of them owns each partition's scans.
CREATE TABLE engine_nodes (
    node       TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE partition_owners (
    partition  INTEGER PRIMARY KEY CHECK (partition >= 0),
    owner      TEXT,
    expires_at INTEGER,
    CHECK ((owner IS NULL) = (expires_at IS NULL))
) STRICT;
