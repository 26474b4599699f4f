-- Memory (rfcs/0008): the checkpointed steps of an execution, one row per
-- name: done (its output is final) or failed (its last error, and how many
-- failed records it had over every attempt). `step_count` lets a claim
-- skip the read for an execution that recorded none.
ALTER TABLE executions ADD COLUMN step_count INTEGER NOT NULL DEFAULT 0
    CHECK (step_count >= 0);

CREATE TABLE steps (
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    uuid        BLOB    NOT NULL CHECK (length(uuid) = 16),
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('done', 'failed')),
    output      BLOB,
    error       TEXT,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    failures    INTEGER NOT NULL CHECK (failures >= 0),
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (uuid, name),
    CHECK ((status = 'done') = (output IS NOT NULL))
) STRICT, WITHOUT ROWID;
