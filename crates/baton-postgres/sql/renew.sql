-- renew: extends every live lease of a worker in one statement.
--
-- $1..$4: partition, uuid, attempt and nonce of each lease (request order).
-- $5 worker id, $6 now, $7 new expiry.
--
-- Answers one row per lease, in request order: whether it was renewed, and
-- the nonce and outcome of the attempt it names (NULL when there is no such
-- attempt), which tell a lease ended by a cancel or a pause from one lost
-- otherwise (`rules::renew_refusal`).
--
-- The lock of every session a renewed run belongs to is extended when $5
-- holds it, to the later of its expiry, the lock's idle time from now and
-- the new lease expiry (`rules::session_lock_until`). The locks are taken
-- in session order first, as claims take them, so a renew and a claim
-- never deadlock; a renew of runs without a session reads no lock.
WITH req AS (
    SELECT *
    FROM UNNEST($1::smallint[], $2::uuid[], $3::integer[], $4::bigint[])
        WITH ORDINALITY AS r(partition, uuid, number, nonce, ord)
),
renewed AS (
    UPDATE executions e
    SET lease_expires_at = $7
    FROM req r
    WHERE e.partition = r.partition
      AND e.uuid = r.uuid
      AND e.state = 'running'
      AND e.attempts = r.number
      AND e.lease_nonce = r.nonce
      AND e.worker_id = $5
      AND e.lease_expires_at > $6
      AND (e.deadline IS NULL OR e.deadline > $6)
    RETURNING e.partition, e.uuid, e.attempts, e.lease_nonce, e.namespace, e.session
),
held AS MATERIALIZED (
    SELECT s.namespace, s.session
    FROM sessions s
    WHERE (s.namespace, s.session) IN (SELECT namespace, session FROM renewed
                                       WHERE session IS NOT NULL)
      AND s.worker_id = $5
    ORDER BY s.namespace, s.session
    FOR UPDATE
),
extended AS (
    UPDATE sessions s
    SET expires_at = GREATEST(s.expires_at, $6 + s.idle_ms, $7)
    FROM held h
    WHERE s.namespace = h.namespace AND s.session = h.session AND s.worker_id = $5
)
SELECT r.ord,
       EXISTS (SELECT 1 FROM renewed w
               WHERE w.partition = r.partition AND w.uuid = r.uuid
                 AND w.attempts = r.number AND w.lease_nonce = r.nonce) AS renewed,
       a.nonce,
       a.outcome
FROM req r
LEFT JOIN attempt_history a
       ON a.partition = r.partition AND a.execution_uuid = r.uuid AND a.number = r.number
ORDER BY r.ord
