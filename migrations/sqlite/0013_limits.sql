-- Limits (rfcs/0011), the same schema version as
-- migrations/postgres/0013_limits.sql. A limit is named (deployment-wide)
-- and covers the executions of one namespace, or of one lane of it (`lane`
-- empty: every lane), counted under a key: a tag's value (`key` =
-- 'tag:<k>'), the kind or the lane. It caps how many of one key run at
-- once (`max_running`) and/or how many a window allows to start
-- (`rate_count` per `rate_per_ms`).
--
-- Running executions are counted from `executions` itself (the index
-- `executions_by_lane_state`), so a run's slot is free in the very
-- transaction that moves it out of `running`, whichever way it ends. A
-- rate's recent claims of a key live in `limit_windows`: instants in
-- milliseconds, ascending, comma separated, only those still inside the
-- window when last written (`last_ms`: the newest).
CREATE TABLE limits (
    name        TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    lane        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    max_running INTEGER CHECK (max_running >= 0),
    rate_count  INTEGER CHECK (rate_count > 0),
    rate_per_ms INTEGER CHECK (rate_per_ms > 0)
) STRICT, WITHOUT ROWID;

CREATE INDEX limits_by_namespace ON limits (namespace, name);

CREATE TABLE limit_windows (
    name      TEXT    NOT NULL,
    key_value TEXT    NOT NULL,
    claims    TEXT    NOT NULL,
    last_ms   INTEGER NOT NULL,
    PRIMARY KEY (name, key_value)
) STRICT, WITHOUT ROWID;
