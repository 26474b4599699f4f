-- The durable state machine (rfcs/0006): the states the durable layer adds
-- (`blocked`, `suspended`, `paused`, and the terminal `skipped`), the attempt
-- outcome `released` (a lease handed back to wait), and two counters: how
-- many of an execution's children are unfinished (`open_children`), and how
-- many of its attempts ended by a release (`released`; the retry policy
-- counts failures, not waits).
--
-- SQLite cannot alter a CHECK constraint, so both tables are rebuilt with
-- their indexes (the migration runs in one transaction).
CREATE TABLE executions_v4 (
    uuid               BLOB    PRIMARY KEY CHECK (length(uuid) = 16),
    partition          INTEGER NOT NULL CHECK (partition >= 0),
    namespace          TEXT    NOT NULL,
    lane               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN
                           ('waiting', 'delayed', 'blocked', 'running', 'suspended', 'paused',
                            'completed', 'failed', 'cancelled', 'expired', 'skipped')),
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
    root               TEXT,
    child_key          TEXT,
    trim_at            INTEGER,
    open_children      INTEGER NOT NULL DEFAULT 0 CHECK (open_children >= 0),
    released           INTEGER NOT NULL DEFAULT 0 CHECK (released >= 0 AND released <= attempts),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL AND lease_nonce IS NOT NULL AND worker_id IS NOT NULL)),
    CHECK ((state IN ('completed', 'failed', 'cancelled', 'expired', 'skipped')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'delayed') <= (run_at IS NOT NULL)),
    CHECK ((result IS NOT NULL) <= (state = 'completed'))
) STRICT;

INSERT INTO executions_v4 (uuid, partition, namespace, lane, kind, state, priority, payload, tags,
    required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, backoff_multiplier,
    backoff_jitter, idempotency_key, parent, created_at, updated_at, run_at, ready_at, deadline,
    finished_at, worker_id, lease_nonce, lease_expires_at, result, last_error, cancel_reason, root,
    child_key, trim_at)
SELECT uuid, partition, namespace, lane, kind, state, priority, payload, tags,
    required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, backoff_multiplier,
    backoff_jitter, idempotency_key, parent, created_at, updated_at, run_at, ready_at, deadline,
    finished_at, worker_id, lease_nonce, lease_expires_at, result, last_error, cancel_reason, root,
    child_key, trim_at
FROM executions;

DROP TABLE executions;
ALTER TABLE executions_v4 RENAME TO executions;

CREATE UNIQUE INDEX executions_idempotency
    ON executions (namespace, lane, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX executions_claim
    ON executions (namespace, lane, priority DESC, ready_at, uuid) WHERE state = 'waiting';
CREATE INDEX executions_due
    ON executions (partition, run_at) WHERE state = 'delayed';
CREATE INDEX executions_leases
    ON executions (partition, lease_expires_at) WHERE state = 'running';
CREATE INDEX executions_deadlines
    ON executions (partition, deadline) WHERE deadline IS NOT NULL AND finished_at IS NULL;
CREATE INDEX executions_retention
    ON executions (partition, (COALESCE(trim_at, finished_at)), uuid)
    WHERE finished_at IS NOT NULL AND root IS NULL;
CREATE INDEX executions_by_namespace ON executions (namespace, uuid);
CREATE INDEX executions_by_lane_state ON executions (namespace, lane, state);
CREATE UNIQUE INDEX executions_child_key
    ON executions (parent, child_key) WHERE child_key IS NOT NULL;
CREATE INDEX executions_children ON executions (parent, uuid) WHERE parent IS NOT NULL;
CREATE INDEX executions_flow ON executions (root, uuid) WHERE root IS NOT NULL;
CREATE INDEX executions_flow_open ON executions (root) WHERE root IS NOT NULL AND finished_at IS NULL;

-- Children created before this version count as open for their parent
-- until they finish (a parent is named by the text form of its id,
-- `{p:N}-<hyphenated uuid>`).
UPDATE executions SET open_children = c.n
FROM (SELECT parent, COUNT(*) AS n FROM executions
      WHERE parent IS NOT NULL AND finished_at IS NULL GROUP BY parent) AS c
WHERE c.parent = '{p:' || executions.partition || '}-'
    || lower(substr(hex(executions.uuid), 1, 8) || '-' || substr(hex(executions.uuid), 9, 4)
    || '-' || substr(hex(executions.uuid), 13, 4) || '-' || substr(hex(executions.uuid), 17, 4)
    || '-' || substr(hex(executions.uuid), 21, 12));

-- Members whose root was trimmed before them (retention did not know flows
-- before version 3) become roots of their own, so retention, which now
-- trims members only with their root, still reaches them.
UPDATE executions SET root = NULL
WHERE root IS NOT NULL AND root NOT IN (
    SELECT '{p:' || r.partition || '}-'
        || lower(substr(hex(r.uuid), 1, 8) || '-' || substr(hex(r.uuid), 9, 4)
        || '-' || substr(hex(r.uuid), 13, 4) || '-' || substr(hex(r.uuid), 17, 4)
        || '-' || substr(hex(r.uuid), 21, 12))
    FROM executions r WHERE r.root IS NULL);

CREATE TABLE attempts_v4 (
    execution_uuid   BLOB    NOT NULL,
    number           INTEGER NOT NULL CHECK (number >= 1),
    worker_id        TEXT    NOT NULL,
    nonce            INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    outcome          TEXT CHECK (outcome IN
                         ('completed', 'failed', 'lease_expired', 'cancelled', 'expired', 'released')),
    error            TEXT,
    PRIMARY KEY (execution_uuid, number),
    CHECK ((outcome IS NULL) = (ended_at IS NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO attempts_v4 SELECT * FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v4 RENAME TO attempts;
