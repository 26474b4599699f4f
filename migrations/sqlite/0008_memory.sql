-- Memory (rfcs/0008): an execution's key-value state, its custom status
-- (with the version a reader follows) and its progress frames (numbered
-- from 1, the newest kept; `progress_seq` is the last number given, so a
-- number is never reused when old frames are dropped). `state_count`
-- bounds the keys without counting rows.
ALTER TABLE executions ADD COLUMN custom_status BLOB;
ALTER TABLE executions ADD COLUMN status_version INTEGER NOT NULL DEFAULT 0
    CHECK (status_version >= 0);
ALTER TABLE executions ADD COLUMN progress_seq INTEGER NOT NULL DEFAULT 0
    CHECK (progress_seq >= 0);
ALTER TABLE executions ADD COLUMN state_count INTEGER NOT NULL DEFAULT 0
    CHECK (state_count >= 0);

CREATE TABLE execution_state (
    partition  INTEGER NOT NULL CHECK (partition >= 0),
    uuid       BLOB    NOT NULL CHECK (length(uuid) = 16),
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    attempt    INTEGER NOT NULL CHECK (attempt >= 1),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (uuid, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE progress_frames (
    partition INTEGER NOT NULL CHECK (partition >= 0),
    uuid      BLOB    NOT NULL CHECK (length(uuid) = 16),
    seq       INTEGER NOT NULL CHECK (seq >= 1),
    at        INTEGER NOT NULL,
    attempt   INTEGER NOT NULL CHECK (attempt >= 1),
    frame     BLOB    NOT NULL,
    PRIMARY KEY (uuid, seq)
) STRICT, WITHOUT ROWID;
