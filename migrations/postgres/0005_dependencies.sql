-- Dependencies (rfcs/0006): an execution that runs after others of its
-- flow finish. Its policy (text such as `all_of;skip` or `quorum:2;run`,
-- NULL without dependencies) and three counters: how many dependencies it
-- has, how many of them completed, how many finished otherwise. An
-- upstream knows it has dependents (`has_dependents`), so a transition
-- looks for them only then. The edges live in `dependencies`, indexed both
-- ways: the dependents of an upstream (the finish hook), the upstreams of
-- a dependent (its claim carries their results). Both ends of an edge are
-- in one flow, so in one partition.
ALTER TABLE executions
    ADD COLUMN dep_policy text,
    ADD COLUMN deps_total integer NOT NULL DEFAULT 0 CHECK (deps_total >= 0),
    ADD COLUMN deps_done integer NOT NULL DEFAULT 0 CHECK (deps_done >= 0),
    ADD COLUMN deps_bad integer NOT NULL DEFAULT 0 CHECK (deps_bad >= 0),
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false,
    -- On a flow's root: some member of the flow has dependencies. Every
    -- writer that finishes a member of such a flow locks the root first,
    -- the one lock order of flows whose members tell dependents (see
    -- `flow::deps` in baton-postgres).
    ADD COLUMN deps_in_flow boolean NOT NULL DEFAULT false;

-- `counted`: the upstream had already finished when the dependent was
-- created, which counted it then; walks from that upstream (a cascade
-- still queued for it) pass the edge by.
CREATE TABLE dependencies (
    partition  smallint NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    downstream uuid     NOT NULL,
    upstream   uuid     NOT NULL,
    counted    boolean  NOT NULL DEFAULT false,
    PRIMARY KEY (partition, downstream, upstream)
);
CREATE INDEX dependencies_upstream ON dependencies (partition, upstream, downstream);

-- What the cascade queue holds: `cancel` (a subtree to cancel, `reason` is
-- the cancel reason) or `dependents` (dependents of `node` to tell that it
-- finished; `reason` is `completed` or `unmet`).
ALTER TABLE cascades
    ADD COLUMN kind text NOT NULL DEFAULT 'cancel' CHECK (kind IN ('cancel', 'dependents'));
