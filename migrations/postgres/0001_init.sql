-- Baton schema for Postgres, version 1 (the same version as
-- migrations/sqlite/0001_init.sql).
--
-- Runs inside the schema named by the backend's `schema` option (the
-- connection's search_path), so one database can hold several deployments.
--
-- Every instant is BIGINT milliseconds since the Unix epoch (UTC), computed by
-- the engine's clock, never the server's now(): the values read back are
-- exactly those SQLite stores. Every column holding a state carries a CHECK
-- constraint listing the canonical literals; the normalising read adapter
-- (crates/baton-postgres/src/read.rs) still verifies each value.
--
-- Partitioning: `executions` and `attempts` are LIST-partitioned on the Baton
-- partition column into 8 child tables each, a fixed small number whatever
-- the deployment's partition count (1..1024): child k holds the Baton
-- partitions p with p % 8 = k, so any count that is a multiple of 8 spreads
-- evenly, and rows of one Baton partition land in the same-numbered child of
-- both tables. Scheduler passes name one Baton partition and are pruned to
-- one child; claims, lists and counts read the 8 children through one Merge
-- Append. See rfcs/0003-postgres-backend.md for the costs of this choice.

CREATE TABLE baton_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE executions (
    partition          smallint         NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid               uuid             NOT NULL,
    namespace          text             NOT NULL,
    lane               text             NOT NULL,
    kind               text             NOT NULL,
    state              text             NOT NULL CHECK (state IN
                           ('waiting', 'delayed', 'running', 'completed', 'failed', 'cancelled', 'expired')),
    priority           integer          NOT NULL,
    payload            bytea            NOT NULL,
    tags               jsonb            NOT NULL CHECK (jsonb_typeof(tags) = 'object'),
    required_caps      jsonb            NOT NULL CHECK (jsonb_typeof(required_caps) = 'array'),
    attempts           integer          NOT NULL CHECK (attempts >= 0),
    max_attempts       integer          NOT NULL CHECK (max_attempts >= 1),
    backoff_initial_ms bigint           NOT NULL CHECK (backoff_initial_ms >= 0),
    backoff_max_ms     bigint           NOT NULL CHECK (backoff_max_ms >= backoff_initial_ms),
    backoff_multiplier double precision NOT NULL CHECK (backoff_multiplier >= 1.0),
    backoff_jitter     boolean          NOT NULL,
    idempotency_key    text,
    parent             text,
    created_at         bigint           NOT NULL,
    updated_at         bigint           NOT NULL,
    run_at             bigint,
    -- When the execution last became eligible: the claim order within a priority.
    ready_at           bigint           NOT NULL,
    deadline           bigint,
    finished_at        bigint,
    worker_id          text,
    lease_nonce        bigint,
    lease_expires_at   bigint,
    result             bytea,
    last_error         text,
    cancel_reason      text,
    PRIMARY KEY (partition, uuid),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL AND lease_nonce IS NOT NULL AND worker_id IS NOT NULL)),
    CHECK ((state IN ('completed', 'failed', 'cancelled', 'expired')) = (finished_at IS NOT NULL)),
    CHECK (state <> 'delayed' OR run_at IS NOT NULL),
    CHECK (result IS NULL OR state = 'completed')
) PARTITION BY LIST (partition);

-- Claims: one range read per child in claim order (highest priority, then
-- earliest eligible, then id), merged across children; only waiting rows.
CREATE INDEX executions_claim
    ON executions (namespace, lane, priority DESC, ready_at, uuid) WHERE state = 'waiting';
-- Scheduler passes: (partition, due column, uuid) is both the scan order and
-- the next-due lookup, read from the index alone.
CREATE INDEX executions_due
    ON executions (partition, run_at, uuid) WHERE state = 'delayed';
CREATE INDEX executions_leases
    ON executions (partition, lease_expires_at, uuid) WHERE state = 'running';
CREATE INDEX executions_deadlines
    ON executions (partition, deadline, uuid) WHERE deadline IS NOT NULL AND finished_at IS NULL;
CREATE INDEX executions_retention
    ON executions (partition, finished_at, uuid) WHERE finished_at IS NOT NULL;
-- list (id order within a namespace) and counts (per lane and state).
CREATE INDEX executions_by_namespace ON executions (namespace, uuid);
CREATE INDEX executions_by_lane_state ON executions (namespace, lane, state);

CREATE TABLE attempts (
    partition      smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    execution_uuid uuid     NOT NULL,
    number         integer  NOT NULL CHECK (number >= 1),
    worker_id      text     NOT NULL,
    nonce          bigint   NOT NULL,
    started_at     bigint   NOT NULL,
    ended_at       bigint,
    outcome        text CHECK (outcome IN ('completed', 'failed', 'lease_expired', 'cancelled', 'expired')),
    error          text,
    PRIMARY KEY (partition, execution_uuid, number),
    CHECK ((outcome IS NULL) = (ended_at IS NULL))
) PARTITION BY LIST (partition);

-- The 8 children of both tables: child k lists every partition number
-- p in 0..1023 with p % 8 = k. Indexes created on the parents below cascade
-- to the children.
DO $$
DECLARE
    k integer;
    parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ', ') INTO parts FROM generate_series(k, 1023, 8) AS p;
        EXECUTE format('CREATE TABLE executions_%s PARTITION OF executions FOR VALUES IN (%s)', k, parts);
        EXECUTE format('CREATE TABLE attempts_%s PARTITION OF attempts FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;

-- Dedup of submissions per namespace and lane. A unique index on a
-- partitioned table must contain the partition key, and an idempotency key
-- says nothing about the partition of the id it maps to, so the keys live in
-- their own table, written in the same transaction as the execution and
-- deleted with it by trim_terminal.
CREATE TABLE idempotency_keys (
    namespace text     NOT NULL,
    lane      text     NOT NULL,
    key       text     NOT NULL,
    partition smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    uuid      uuid     NOT NULL,
    PRIMARY KEY (namespace, lane, key)
);

-- Engine processes alive, and which of them owns each partition's scans.
-- Heartbeats serialise on the baton_meta 'partitions' row (SELECT … FOR
-- UPDATE), so two nodes never take the same free partition.
CREATE TABLE engine_nodes (
    node       text   PRIMARY KEY,
    expires_at bigint NOT NULL
);

CREATE TABLE partition_owners (
    partition  smallint PRIMARY KEY CHECK (partition BETWEEN 0 AND 1023),
    owner      text,
    expires_at bigint,
    CHECK ((owner IS NULL) = (expires_at IS NULL))
);
