-- 0018: the per-lane, per-state index leaves out waiting and running rows.
--
-- `counts` (per lane and state) read `executions_by_lane_state (namespace,
-- lane, state)`, and every transition paid for it: a submission inserted
-- an entry, and a claim and a completion each deleted one and inserted
-- another, because `state` is in the key. No hot-path statement reads it.
--
-- Now it holds only the rows that have left the queue or wait outside it
-- (delayed, paused, suspended, finished...): a submission and a claim no
-- longer touch it, a completion inserts one entry. `counts` reads waiting
-- rows from `executions_claim` (waiting rows by namespace and lane) and
-- running ones from `executions_leases` (running rows only, at most as
-- many as the workers hold).
--
-- `executions_by_namespace (namespace, uuid)` stays as it is: SQLite only
-- writes an index whose columns an update changes, and no transition
-- changes these.
DROP INDEX IF EXISTS executions_by_lane_state;
CREATE INDEX executions_by_lane_state ON executions (namespace, lane, state)
    WHERE state NOT IN ('waiting', 'running');
