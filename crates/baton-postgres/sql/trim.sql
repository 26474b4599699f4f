-- trim_terminal and delete: deletes the executions $2 of partition $1
-- (finished flow members, or roots whose flow is gone; locked by the caller
-- earlier in the same transaction), with their attempts, signals, steps,
-- state, progress frames, events, idempotency keys and dependency edges
-- (both ends of an edge are members of one flow); answers how many. No
-- statement here records an event (migration 0011's triggers fire on
-- inserts and changes of state, never on deletes), so none outlives its
-- execution. A removed execution someone waits on announces it (migration
-- 0008's trigger), so its readers learn at once that it is gone.
--
-- $1 partition, $2 uuids.
WITH gone_attempts AS (
    DELETE FROM attempts WHERE partition = $1 AND execution_uuid = ANY($2::uuid[])
),
gone_signals AS (
    DELETE FROM signals WHERE partition = $1 AND uuid = ANY($2::uuid[])
),
gone_steps AS (
    DELETE FROM steps WHERE partition = $1 AND uuid = ANY($2::uuid[])
),
gone_state AS (
    DELETE FROM execution_state WHERE partition = $1 AND uuid = ANY($2::uuid[])
),
gone_frames AS (
    DELETE FROM progress_frames WHERE partition = $1 AND uuid = ANY($2::uuid[])
),
gone_events AS (
    DELETE FROM events WHERE partition = $1 AND uuid = ANY($2::uuid[])
),
gone_edges AS (
    DELETE FROM dependencies
    WHERE partition = $1 AND (downstream = ANY($2::uuid[]) OR upstream = ANY($2::uuid[]))
),
gone AS (
    DELETE FROM executions
    WHERE partition = $1 AND uuid = ANY($2::uuid[])
    RETURNING uuid, namespace, lane, session, idempotency_key
),
gone_keys AS (
    DELETE FROM idempotency_keys k
    USING gone g
    WHERE k.namespace = g.namespace AND k.lane = g.lane
      AND k.session = COALESCE(g.session, '') AND k.key = g.idempotency_key
      AND k.uuid = g.uuid
)
SELECT (SELECT count(*) FROM gone) AS processed
