-- Waiting without a worker (rfcs/0007): the wait of a suspended execution
-- (its waitpoints joined by commas, empty for a sleep; its condition,
-- timeout instant and timeout policy), the log of the waits it ended (one
-- letter each: `s` signalled, `t` timed out), and how many signals it holds.
-- The wait columns of an ended wait may remain: they count only while the
-- execution is `suspended`, and each suspend overwrites all of them.
ALTER TABLE executions ADD COLUMN wait_points TEXT;
ALTER TABLE executions ADD COLUMN wait_condition TEXT CHECK (wait_condition IN ('all', 'any'));
ALTER TABLE executions ADD COLUMN wait_timeout_at INTEGER;
ALTER TABLE executions ADD COLUMN on_timeout TEXT CHECK (on_timeout IN ('resume', 'fail', 'cancel'));
ALTER TABLE executions ADD COLUMN wait_log TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN signal_count INTEGER NOT NULL DEFAULT 0
    CHECK (signal_count >= 0);

-- The timeout pass: suspended executions by the instant their wait times out.
CREATE INDEX executions_timeouts ON executions (partition, wait_timeout_at)
    WHERE state = 'suspended' AND wait_timeout_at IS NOT NULL;

-- Signals an execution holds, numbered from 1 in arrival order; `wait` is
-- the number of the wait that consumed it (NULL while buffered).
CREATE TABLE signals (
    partition       INTEGER NOT NULL CHECK (partition >= 0),
    uuid            BLOB    NOT NULL CHECK (length(uuid) = 16),
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    name            TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    idempotency_key TEXT,
    received_at     INTEGER NOT NULL,
    wait            INTEGER CHECK (wait >= 1),
    PRIMARY KEY (uuid, seq)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX signals_idempotency ON signals (uuid, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
