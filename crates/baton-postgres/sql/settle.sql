-- fail and reclaim_expired_leases: closes the open attempt of each execution
-- with outcome $9 and its error, and applies the retry decision the caller
-- computed. The caller holds the row locks (SELECT … FOR UPDATE earlier in
-- the same transaction). The open attempt lives in the execution row
-- (migration 0019), so the update that settles the execution closes it.
--
-- $1..$7: partition, uuid, new state, run_at, ready_at (NULL: keep), finished_at
-- and error per execution. $8 now, $9 attempt outcome, $10 the wake-up
-- channel, notified for lanes that got waiting work back.
WITH s AS (
    SELECT *
    FROM UNNEST($1::smallint[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::text[])
        AS s(partition, uuid, state, run_at, ready_at, finished_at, error)
),
settled AS (
    UPDATE executions e
    SET state = s.state,
        run_at = s.run_at,
        ready_at = COALESCE(s.ready_at, e.ready_at),
        finished_at = s.finished_at,
        last_error = s.error,
        updated_at = $8,
        worker_id = NULL,
        lease_nonce = NULL,
        lease_expires_at = NULL,
        attempt_ended_at = CASE WHEN e.attempt_started_at IS NOT NULL AND e.attempt_outcome IS NULL
                                THEN $8 ELSE e.attempt_ended_at END,
        attempt_outcome = CASE WHEN e.attempt_started_at IS NOT NULL AND e.attempt_outcome IS NULL
                               THEN $9 ELSE e.attempt_outcome END,
        attempt_error = CASE WHEN e.attempt_started_at IS NOT NULL AND e.attempt_outcome IS NULL
                             THEN s.error ELSE e.attempt_error END
    FROM s
    WHERE e.partition = s.partition AND e.uuid = s.uuid
    RETURNING e.*
),
woken AS (
    SELECT pg_notify($10, namespace || ' ' || lane)
    FROM (SELECT DISTINCT namespace, lane FROM settled WHERE state = 'waiting') w
)
SELECT settled.*, (SELECT count(*) FROM woken) AS woken FROM settled
