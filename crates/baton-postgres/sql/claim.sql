-- claim: picks, leases and opens attempts for up to $9 executions, in one
-- statement (this head, then claim_tail.sql).
--
-- $1 now, $2 worker id, $3 lease expiry, $4 one fresh nonce per possible
-- claim, $5 the worker's session idle time in ms (see claim_tail.sql); $6
-- namespace, $7 lanes (distinct), $8 the worker's capabilities as a JSON
-- array, $9 max, $10 and $11 the sort keys of the lowest and highest
-- versions the worker runs (NULL: open).
--
-- Limits first (`gate`): when a limit of the namespace that may hold work
-- back (one with a cap or a rate) covers one of the lanes asked for, the
-- statement takes nothing and answers `limited`, and the claim goes
-- through the limited path (src/limits.rs), which judges each candidate
-- against the limits. A limit that is only fair holds nothing back: its
-- turns are already the claim order (`ready_at`, migration 0015). One
-- probe of `limits_by_namespace`, an empty range in the common case, so a
-- claim no limit covers stays this one statement. Reading `limits` holds
-- its ACCESS SHARE lock until the statement ends: `set_limit` (ACCESS
-- EXCLUSIVE) waits for a claim in flight, and a claim starting after it
-- took its lock waits for it and then reads the new limits (the
-- statement's snapshot is taken once its locks are held).
--
-- Per lane, the claim index gives waiting executions in claim order (a Merge
-- Append over the hash children); rows another claimer holds are skipped, not
-- waited for. The lanes' candidates are merged and cut to $9.
--
-- Routing filters the candidates as the index gives them: a versioned
-- execution outside $10..$11 is passed over (one without a version is
-- not), and so is one whose session another worker holds by the
-- statement's snapshot (one primary-key probe of `sessions`, only for rows
-- with a session). The snapshot can be behind a lock taken since: the
-- tail takes the locks of the sessions picked and claims only the work of
-- those it got.
--
-- A lane an operator paused (a row of `paused_lanes`) is dropped from $7
-- before any execution is read: one primary-key probe per lane asked for,
-- into a table that is empty in the common case. The statement reads
-- `paused_lanes` in its own snapshot (READ COMMITTED, taken when it
-- starts), so a claim whose statement started before a `pause_lane`
-- committed may still take work of that lane; once `pause_lane` has
-- answered (committed), every claim that starts later skips the lane.
WITH gate AS (
    SELECT EXISTS (
        SELECT 1 FROM limits m
        WHERE m.namespace = $6 AND (m.lane = '' OR m.lane = ANY($7::text[]))
          AND (m.max_running IS NOT NULL OR m.rate_count IS NOT NULL)
    ) AS limited
),
lanes AS (
    SELECT l.lane
    FROM UNNEST($7::text[]) AS l(lane)
    WHERE NOT (SELECT g.limited FROM gate g)
      AND NOT EXISTS (SELECT 1 FROM paused_lanes p WHERE p.namespace = $6 AND p.lane = l.lane)
),
picked AS (
    SELECT c.partition, c.uuid, c.namespace, c.session, c.attempts, c.attempt_worker,
           c.attempt_nonce, c.attempt_started_at, c.attempt_ended_at, c.attempt_outcome,
           c.attempt_error
    FROM lanes l
    CROSS JOIN LATERAL (
        SELECT e.partition, e.uuid, e.namespace, e.session, e.priority, e.ready_at,
               e.attempts, e.attempt_worker, e.attempt_nonce, e.attempt_started_at,
               e.attempt_ended_at, e.attempt_outcome, e.attempt_error
        FROM executions e
        WHERE e.namespace = $6
          AND e.lane = l.lane
          AND e.state = 'waiting'
          AND (e.deadline IS NULL OR e.deadline > $1)
          AND e.required_caps <@ $8::jsonb
          AND (e.version_key IS NULL
               OR (($10::text IS NULL OR e.version_key >= $10)
                   AND ($11::text IS NULL OR e.version_key <= $11)))
          AND (e.session IS NULL
               OR NOT EXISTS (SELECT 1 FROM sessions s
                              WHERE s.namespace = e.namespace AND s.session = e.session
                                AND s.worker_id <> $2 AND s.expires_at > $1))
        ORDER BY e.priority DESC, e.ready_at, e.uuid
        LIMIT $9
        FOR UPDATE OF e SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.ready_at, c.uuid
    LIMIT $9
),
