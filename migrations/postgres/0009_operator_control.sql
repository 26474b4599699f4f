-- Operator control (rfcs/0009): the worker registry, the same schema
-- version as migrations/sqlite/0009_operator_control.sql. One row per
-- worker and namespace it claims from: the lanes and capabilities of its
-- last recorded claim, when a claim or renew of it was last recorded
-- (engine clock, milliseconds), and how many leases its last recorded
-- renew presented. Rows past the TTL are not listed and are removed by
-- later recordings.
--
-- A small table written a few times per TTL per worker, so it is not
-- partitioned. The primary key serves the listing of a namespace by id;
-- `workers_by_id` serves a renew, which names the worker only. No index
-- covers `last_seen`: it changes on every write, and an index on it would
-- make every update a non-HOT one.
CREATE TABLE workers (
    namespace    text    NOT NULL,
    worker_id    text    NOT NULL,
    lanes        text[]  NOT NULL,
    capabilities text[]  NOT NULL,
    last_seen    bigint  NOT NULL,
    leases       integer NOT NULL DEFAULT 0 CHECK (leases >= 0),
    PRIMARY KEY (namespace, worker_id)
);

CREATE INDEX workers_by_id ON workers (worker_id);
