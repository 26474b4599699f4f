-- claim: picks, leases and opens attempts for up to $8 executions, in one
-- statement (this head, then claim_tail.sql).
--
-- $1 now, $2 worker id, $3 lease expiry, $4 one fresh nonce per possible
-- claim (see claim_tail.sql); $5 namespace, $6 lanes (distinct), $7 the
-- worker's capabilities as a JSON array, $8 max.
--
-- Limits first (`gate`): when a limit of the namespace covers one of the
-- lanes asked for, the statement takes nothing and answers `limited`, and
-- the claim goes through the limited path (src/limits.rs), which judges
-- each candidate against the limits. One probe of `limits_by_namespace`,
-- an empty range in the common case, so a claim no limit covers stays this
-- one statement. Reading `limits` holds its ACCESS SHARE lock until the
-- statement ends: `set_limit` (ACCESS EXCLUSIVE) waits for a claim in
-- flight, and a claim starting after it took its lock waits for it and
-- then reads the new limits (the statement's snapshot is taken once its
-- locks are held).
--
-- Per lane, the claim index gives waiting executions in claim order (a Merge
-- Append over the hash children); rows another claimer holds are skipped, not
-- waited for. The lanes' candidates are merged and cut to $8.
--
-- A lane an operator paused (a row of `paused_lanes`) is dropped from $6
-- before any execution is read: one primary-key probe per lane asked for,
-- into a table that is empty in the common case. The statement reads
-- `paused_lanes` in its own snapshot (READ COMMITTED, taken when it
-- starts), so a claim whose statement started before a `pause_lane`
-- committed may still take work of that lane; once `pause_lane` has
-- answered (committed), every claim that starts later skips the lane.
WITH gate AS (
    SELECT EXISTS (
        SELECT 1 FROM limits m
        WHERE m.namespace = $5 AND (m.lane = '' OR m.lane = ANY($6::text[]))
    ) AS limited
),
lanes AS (
    SELECT l.lane
    FROM UNNEST($6::text[]) AS l(lane)
    WHERE NOT (SELECT g.limited FROM gate g)
      AND NOT EXISTS (SELECT 1 FROM paused_lanes p WHERE p.namespace = $5 AND p.lane = l.lane)
),
picked AS (
    SELECT c.partition, c.uuid
    FROM lanes l
    CROSS JOIN LATERAL (
        SELECT e.partition, e.uuid, e.priority, e.ready_at
        FROM executions e
        WHERE e.namespace = $5
          AND e.lane = l.lane
          AND e.state = 'waiting'
          AND (e.deadline IS NULL OR e.deadline > $1)
          AND e.required_caps <@ $7::jsonb
        ORDER BY e.priority DESC, e.ready_at, e.uuid
        LIMIT $8
        FOR UPDATE OF e SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.ready_at, c.uuid
    LIMIT $8
),
