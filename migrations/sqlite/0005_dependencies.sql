-- Dependencies (rfcs/0006): an execution that runs after others of its
-- flow finish. Its policy (text such as `all_of;skip` or `quorum:2;run`,
-- NULL without dependencies) and three counters: how many dependencies it
-- has, how many of them completed, how many finished otherwise. An
-- upstream knows it has dependents (`has_dependents`), so a transition
-- looks for them only then. The edges live in `dependencies`, indexed both
-- ways: the dependents of an upstream (the finish hook), the upstreams of
-- a dependent (its claim carries their results).
ALTER TABLE executions ADD COLUMN dep_policy TEXT;
ALTER TABLE executions ADD COLUMN deps_total INTEGER NOT NULL DEFAULT 0 CHECK (deps_total >= 0);
ALTER TABLE executions ADD COLUMN deps_done INTEGER NOT NULL DEFAULT 0 CHECK (deps_done >= 0);
ALTER TABLE executions ADD COLUMN deps_bad INTEGER NOT NULL DEFAULT 0 CHECK (deps_bad >= 0);
ALTER TABLE executions ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0
    CHECK (has_dependents IN (0, 1));

-- `counted`: the upstream had already finished when the dependent was
-- created, which counted it then; walks from that upstream (a cascade
-- still queued for it) pass the edge by.
CREATE TABLE dependencies (
    partition  INTEGER NOT NULL CHECK (partition >= 0),
    downstream BLOB    NOT NULL CHECK (length(downstream) = 16),
    upstream   BLOB    NOT NULL CHECK (length(upstream) = 16),
    counted    INTEGER NOT NULL DEFAULT 0 CHECK (counted IN (0, 1)),
    PRIMARY KEY (downstream, upstream)
) STRICT, WITHOUT ROWID;
CREATE INDEX dependencies_upstream ON dependencies (upstream, downstream);

-- What the cascade queue holds: `cancel` (a subtree to cancel, `reason` is
-- the cancel reason) or `dependents` (dependents of `node` to tell that it
-- finished; `reason` is `completed` or `unmet`).
ALTER TABLE cascades ADD COLUMN kind TEXT NOT NULL DEFAULT 'cancel'
    CHECK (kind IN ('cancel', 'dependents'));
