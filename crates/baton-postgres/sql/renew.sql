-- renew: extends every live lease of a worker in one statement.
--
-- $1..$4: partition, uuid, attempt and nonce of each lease (request order).
-- $5 worker id, $6 now, $7 new expiry.
--
-- Answers one row per lease, in request order: whether it was renewed, and
-- the nonce and outcome of the attempt it names (NULL when there is no such
-- attempt), which tell a lease ended by a cancel or a pause from one lost
-- otherwise (`rules::renew_refusal`).
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
    RETURNING e.partition, e.uuid, e.attempts, e.lease_nonce
)
SELECT r.ord,
       EXISTS (SELECT 1 FROM renewed w
               WHERE w.partition = r.partition AND w.uuid = r.uuid
                 AND w.attempts = r.number AND w.lease_nonce = r.nonce) AS renewed,
       a.nonce,
       a.outcome
FROM req r
LEFT JOIN attempts a
       ON a.partition = r.partition AND a.execution_uuid = r.uuid AND a.number = r.number
ORDER BY r.ord
