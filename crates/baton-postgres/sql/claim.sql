-- claim: picks, leases and opens attempts for up to $5 executions, in one
-- statement.
--
-- $1 namespace, $2 lanes (distinct), $3 now, $4 the worker's capabilities as
-- a JSON array, $5 max, $6 worker id, $7 lease expiry, $8 one fresh nonce per
-- possible claim.
--
-- Per lane, the claim index gives waiting executions in claim order (a Merge
-- Append over the hash children); rows another claimer holds are skipped, not
-- waited for. The lanes' candidates are merged and cut to $5.
--
-- A lane an operator paused (a row of `paused_lanes`) is dropped from $2
-- before any execution is read: one primary-key probe per lane asked for,
-- into a table that is empty in the common case. The statement reads
-- `paused_lanes` in its own snapshot (READ COMMITTED, taken when it
-- starts), so a claim whose statement started before a `pause_lane`
-- committed may still take work of that lane; once `pause_lane` has
-- answered (committed), every claim that starts later skips the lane.
--
-- Each claimed row comes with the names and outputs of its done steps
-- (`step_names`, `step_outputs`, aligned by name; NULL without any). Only
-- rows whose `step_count` is not zero read `steps`: the condition names
-- only the outer row, so it gates the lateral subquery (a one-time filter)
-- and an execution without steps costs the claim nothing. The read sees
-- every step of the execution: steps are written only under a live lease,
-- under the row lock, and a row is claimable only once a later writer took
-- that lock to end the lease, so the statement's snapshot, in which the row
-- was already waiting, holds them all.
WITH lanes AS (
    SELECT l.lane
    FROM UNNEST($2::text[]) AS l(lane)
    WHERE NOT EXISTS (SELECT 1 FROM paused_lanes p WHERE p.namespace = $1 AND p.lane = l.lane)
),
picked AS (
    SELECT c.partition, c.uuid
    FROM lanes l
    CROSS JOIN LATERAL (
        SELECT e.partition, e.uuid, e.priority, e.ready_at
        FROM executions e
        WHERE e.namespace = $1
          AND e.lane = l.lane
          AND e.state = 'waiting'
          AND (e.deadline IS NULL OR e.deadline > $3)
          AND e.required_caps <@ $4::jsonb
        ORDER BY e.priority DESC, e.ready_at, e.uuid
        LIMIT $5
        FOR UPDATE OF e SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.ready_at, c.uuid
    LIMIT $5
),
numbered AS (
    SELECT partition, uuid, row_number() OVER () AS n FROM picked
),
claimed AS (
    UPDATE executions e
    SET state = 'running',
        attempts = e.attempts + 1,
        worker_id = $6,
        lease_nonce = ($8::bigint[])[n.n],
        lease_expires_at = $7,
        updated_at = $3
    FROM numbered n
    WHERE e.partition = n.partition AND e.uuid = n.uuid
    RETURNING e.*
),
opened AS (
    INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, started_at)
    SELECT partition, uuid, attempts, $6, lease_nonce, $3 FROM claimed
)
SELECT c.*, st.step_names, st.step_outputs
FROM claimed c
LEFT JOIN LATERAL (
    SELECT array_agg(s.name ORDER BY s.name) AS step_names,
           array_agg(s.output ORDER BY s.name) AS step_outputs
    FROM steps s
    WHERE c.step_count > 0
      AND s.partition = c.partition AND s.uuid = c.uuid AND s.status = 'done'
) st ON true
