-- Limits (rfcs/0011), the same schema version as
-- migrations/sqlite/0013_limits.sql. A limit is named (deployment-wide)
-- and covers the executions of one namespace, or of one lane of it (`lane`
-- empty: every lane), counted under a key: a tag's value (`key` =
-- 'tag:<k>'), the kind or the lane. It caps how many of one key run at
-- once (`max_running`) and/or how many a window allows to start
-- (`rate_count` per `rate_per_ms`).
--
-- Running executions are counted from `executions` itself, never kept in
-- a counter: a run's slot is free in the very transaction that moves it
-- out of `running`, whichever way it ends, and a limit set later counts
-- what already runs. The count reads the running rows through the
-- running-only partial index `executions_leases` (they are bounded by the
-- leases workers hold; the planner reads a table child whole only when
-- running rows are much of it), filtered by namespace: never a range of
-- the namespace's finished or waiting rows. No index is added to
-- `executions`: claims and lease renewals, which rewrite running rows,
-- would pay for it whether or not any limit exists. A rate's recent
-- claims of a key live in `limit_windows`: instants in milliseconds,
-- ascending, only those still inside the window when last written
-- (`last_ms`: the newest).
--
-- The claim statement (sql/claim.sql) probes `limits` by namespace
-- (`limits_by_namespace`, an empty range in the common case) and takes no
-- work when a limit covers one of its lanes; such claims go through one
-- transaction that locks the namespace's covering limits `FOR UPDATE` in
-- name order, so limited claimers of a namespace serialise on those rows
-- (see src/limits.rs). `set_limit` and `remove_limit` lock the whole table
-- (ACCESS EXCLUSIVE): they wait for the claims reading it, and every claim
-- after them judges by the new limits.
CREATE TABLE limits (
    name        text    PRIMARY KEY,
    namespace   text    NOT NULL,
    lane        text    NOT NULL,
    key         text    NOT NULL,
    max_running integer CHECK (max_running >= 0),
    rate_count  integer CHECK (rate_count > 0),
    rate_per_ms bigint  CHECK (rate_per_ms > 0),
    CHECK ((rate_count IS NULL) = (rate_per_ms IS NULL))
);

CREATE INDEX limits_by_namespace ON limits (namespace, name);

CREATE TABLE limit_windows (
    name      text     NOT NULL,
    key_value text     NOT NULL,
    claims    bigint[] NOT NULL,
    last_ms   bigint   NOT NULL,
    PRIMARY KEY (name, key_value)
);
