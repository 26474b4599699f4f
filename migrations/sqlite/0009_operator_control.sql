-- Operator control (rfcs/0009): the worker registry. One row per worker
-- and namespace it claims from: the lanes and capabilities of its last
-- recorded claim, when a claim or renew of it was last recorded, and how
-- many leases its last recorded renew presented. Rows past the TTL are
-- not listed and are removed by later recordings.
CREATE TABLE workers (
    namespace    TEXT    NOT NULL,
    worker_id    TEXT    NOT NULL,
    lanes        TEXT    NOT NULL,
    capabilities TEXT    NOT NULL,
    last_seen    INTEGER NOT NULL,
    leases       INTEGER NOT NULL DEFAULT 0 CHECK (leases >= 0),
    PRIMARY KEY (namespace, worker_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX workers_by_id ON workers (worker_id);
